"""2-process data-parallel training on CPU (gloo) with each gradient compressor."""

import pytest
import torch

from axdnn.errors import ConfigError
from axdnn.train import TrainConfig
from axdnn.train.compression import (
    CompressionConfig,
    adacomp_select,
    nominal_ratio,
    pack_bits,
    unpack_bits,
)
from axdnn.train.distributed import ParallelJob, shard, train_data_parallel
from axdnn.train.precision import TrainPrecision

RUNS = [
    CompressionConfig("none"),
    CompressionConfig("fp16"),
    CompressionConfig("powersgd", rank=2),
    CompressionConfig("topk", ratio=0.05),
    CompressionConfig("sign"),
    CompressionConfig("adacomp", bin_size=50),
    CompressionConfig("topk", ratio=1.0),  # sends everything: must equal plain all-reduce
]
PARAMS = 24058  # digits_cnn's parameters: one DDP bucket


@pytest.fixture(scope="module")
def trained():
    config = TrainConfig(epochs=3, lr=1e-2, batch_size=64, seed=0)
    job = ParallelJob("digits_cnn", "digits", config, RUNS)
    return train_data_parallel(job, workers=2)


@pytest.mark.parametrize("i", range(len(RUNS)))
def test_loss_falls_and_ranks_stay_identical(trained, i):
    records, _ = trained
    record = records[i]
    assert record["workers"] == 2
    assert record["ranks_identical"], f"{record['compressor']}: replicas diverged"
    losses = [e["train_loss"] for e in record["history"]["epochs"]]
    assert losses[-1] < losses[0], f"{record['compressor']}: loss {losses}"
    assert record["test"]["top1"] > 0.3


def test_bytes_drop_by_the_compressors_ratio(trained):
    records, _ = trained
    comm = {(r["compressor"], r["compression"]["ratio"]): r["communication"] for r in records}
    exact = comm[("none", 0.01)]
    assert exact["compression_ratio"] == pytest.approx(1.0)
    for run in RUNS:
        c = comm[(run.compressor, run.ratio)]
        assert c["fp32_wire_bytes"] == pytest.approx(exact["wire_bytes"])
        measured = exact["wire_bytes"] / c["wire_bytes"]
        assert measured == pytest.approx(c["compression_ratio"])
        expected = nominal_ratio(run, PARAMS, world_size=2)
        if expected is not None:
            assert measured == pytest.approx(expected, rel=1e-6), run.compressor
        elif run.compressor != "none":
            assert measured > 1.5, run.compressor
    assert comm[("topk", 0.05)]["compression_ratio"] == pytest.approx(4 * PARAMS / (8 * 1203))
    assert comm[("sign", 0.01)]["compression_ratio"] > 30


def test_sending_everything_equals_plain_allreduce(trained):
    _, states = trained
    plain, everything = states[0], states[-1]
    assert all(torch.equal(plain[k], everything[k]) for k in plain)
    assert not all(torch.equal(plain[k], states[3][k]) for k in plain)  # top-5% differs


def test_precision_and_compression_together():
    config = TrainConfig(epochs=1, lr=1e-2, batch_size=128, seed=0)
    job = ParallelJob("digits_cnn", "digits", config, [CompressionConfig("sign")])
    job.precision = TrainPrecision.truncated(4)
    records, _ = train_data_parallel(job, workers=2)
    assert records[0]["ranks_identical"]
    assert records[0]["memory_energy"]["saved_vs_fp32"] == pytest.approx(1 - 12 / 32)


def test_bit_packing_round_trips():
    g = torch.Generator().manual_seed(0)
    bits = torch.rand(37, generator=g) > 0.5
    packed = pack_bits(bits)
    assert packed.dtype == torch.uint8 and packed.numel() == 5
    assert torch.equal(unpack_bits(packed, 37), bits)


def test_adacomp_sends_entries_near_their_bins_maximum():
    acc = torch.tensor([0.1, -0.9, 0.2, 0.05, 0.3, 0.29])
    grad = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.02])
    sent = adacomp_select(acc, grad, bin_size=3).tolist()
    assert sent == [1, 4, 5]  # bin 1: -0.9 is the max; bin 2: 0.29 + 0.02 passes 0.3


def test_shards_are_disjoint_and_equal():
    data = list(range(11))
    a, b = shard(data, 0, 2), shard(data, 1, 2)
    assert len(a) == len(b) == 5
    assert set(a.indices).isdisjoint(b.indices)


@pytest.mark.parametrize(
    "kwargs, needle",
    [({"compressor": "qsgd"}, "qsgd"), ({"ratio": 0.0}, "ratio"), ({"bin_size": 0}, "bin")],
)
def test_bad_compression_names_the_value(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        CompressionConfig(**kwargs)


def test_one_worker_is_refused():
    job = ParallelJob("digits_cnn", "digits", TrainConfig(epochs=1), [CompressionConfig()])
    with pytest.raises(ConfigError, match="workers"):
        train_data_parallel(job, workers=1)
