"""Weight sharing: optimal 1-D clustering, the paper's compression ratio, cost, checkpoints,
codebook fine-tuning and the NSGA-II search over k per layer."""

import copy
import math

import pytest
import torch
from torch import nn

from axdnn.compress import (
    accuracy,
    cluster,
    compressed_checkpoint,
    compression_ratio,
    cost_summary,
    finetune_codebooks,
    layer_codes,
    memory_bits,
    search_sharing,
    share_layer,
    share_weights,
    shareable_layers,
    sharing_cost,
)
from axdnn.errors import CompressionError
from axdnn.models import build_model
from axdnn.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint


def test_cluster_is_optimal_on_separated_values():
    w = torch.tensor([0.0, 0.1, 0.2, 5.0, 5.1, 9.9, 10.0])
    shared = cluster(w, 3)
    assert torch.allclose(shared.codebook, torch.tensor([0.1, 5.05, 9.95]))
    assert shared.indices.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert cluster(w, 3).codebook.tolist() == shared.codebook.tolist()  # deterministic


def test_cluster_with_more_clusters_than_values_keeps_them():
    w = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    shared = cluster(w, 8)
    assert shared.k == 2 and torch.equal(shared.dense(), w)
    with pytest.raises(CompressionError, match="k=0"):
        cluster(w, 0)


def test_compression_ratio_formula_of_the_paper():
    weights = {"a": 1000, "b": 100}
    ks = {"a": 16, "b": None}
    expected = (1100 * 16) / (1000 * 4 + 16 * 16 + 100 * 16)
    assert math.isclose(compression_ratio(weights, ks, 16), expected)
    assert memory_bits(1000, 5, 16) == 1000 * 3 + 5 * 16
    assert memory_bits(10, 1, 8) == 8  # one shared value needs no index


def test_share_layer_leaves_k_distinct_values():
    torch.manual_seed(0)
    layer = nn.Linear(20, 10)
    rec = share_layer(layer, 4, name="fc")
    assert len(torch.unique(layer.weight)) == 4 and rec.k == 4 and rec.weights == 200
    assert sorted(torch.unique(layer.weight).tolist()) == pytest.approx(rec.codebook)
    with pytest.raises(CompressionError, match="BatchNorm"):
        share_layer(nn.BatchNorm2d(3), 4)


def test_shared_checkpoint_reloads_with_its_codebooks(tmp_path):
    torch.manual_seed(0)
    model = build_model("lenet5", 1, 10)
    base = Checkpoint("lenet5", {"in_channels": 1, "num_classes": 10}, model.state_dict())
    records = share_weights(model, {"conv2": 8, "fc1": 4})
    path = save_checkpoint(tmp_path / "s.pt", compressed_checkpoint(base, model, sharing=records))
    ck = load_checkpoint(path)
    again = ck.build()
    codes = layer_codes(again, ck.extra["sharing"])
    assert codes["fc1"].k == 4 and torch.equal(codes["conv2"].dense(), again.conv2.weight)
    with torch.no_grad():
        again.fc1.weight[0, 0] += 1.0
    with pytest.raises(CompressionError, match="fc1"):
        layer_codes(again, ck.extra["sharing"])


def test_cost_counts_memory_and_lookups():
    model = build_model("lenet5", 1, 10)
    rows = {r.name: r for r in sharing_cost(model, (1, 28, 28), {"fc1": 16})}
    assert rows["fc1"].memory_bits == 48000 * 4 + 16 * 16
    assert rows["fc1"].codebook_lookups == rows["fc1"].macs == 48000
    assert rows["conv1"].codebook_lookups == 0 and rows["conv1"].memory_bits == 150 * 16
    summary = cost_summary(list(rows.values()))
    layers = shareable_layers(model)
    assert math.isclose(summary["compression_ratio"], compression_ratio(layers, {"fc1": 16}))


def test_codebook_finetuning_lowers_the_loss(digits, trained_cnn):
    x, y = digits.train.tensors
    model = copy.deepcopy(trained_cnn)
    share_weights(model, {n: 2 for n in shareable_layers(model)})
    codes = layer_codes(
        model,
        {
            n: {"codebook": torch.unique(m.weight).tolist()}
            for n, m in model.named_modules()
            if n in shareable_layers(model)
        },
    )
    batches = [(x[i : i + 128], y[i : i + 128]) for i in range(0, 1024, 128)]
    losses = finetune_codebooks(model, codes, batches, epochs=3, lr=1e-3)
    assert losses[-1] < losses[0]
    for name in codes:
        assert len(torch.unique(dict(model.named_modules())[name].weight)) <= 2


def test_search_finds_compression_within_budget(digits, trained_cnn):
    vx, vy = digits.val.tensors
    result = search_sharing(trained_cnn, vx, vy, 0.01, k_range=(2, 32), trials=24, population=8)
    best = result.best
    assert best is not None and best.drop <= 0.01 and best.compression_ratio > 4
    assert len(result.trials) == 24 and result.pareto
    assert all(k in (2, 4, 8, 16, 32) for t in result.trials for k in t.ks.values())
    again = search_sharing(trained_cnn, vx, vy, 0.01, k_range=(2, 32), trials=24, population=8)
    assert again.best.ks == best.ks  # same seed, same answer
    model = build_model("digits_cnn", 1, 10)
    model.load_state_dict(trained_cnn.state_dict())
    share_weights(model, best.ks)
    assert accuracy(model, vx, vy) == pytest.approx(best.accuracy)
    assert trained_cnn.features[0].weight.unique().numel() > 32  # the model was not changed


def test_search_rejects_bad_settings(digits, trained_cnn):
    vx, vy = digits.val.tensors
    with pytest.raises(CompressionError, match="k range"):
        search_sharing(trained_cnn, vx, vy, k_range=(8, 2))
    with pytest.raises(CompressionError, match="budget"):
        search_sharing(trained_cnn, vx, vy, 1.5)
    with pytest.raises(CompressionError, match="nope"):
        search_sharing(trained_cnn, vx, vy, layers=["nope"])


def test_search_over_every_k(digits, trained_cnn):
    vx, vy = digits.val.tensors
    result = search_sharing(trained_cnn, vx[:64], vy[:64], 0.05, k_range=(3, 20),
                            powers_of_two=False, trials=20, population=6)  # fmt: skip
    ks = {k for t in result.trials for k in t.ks.values()}
    assert ks <= set(range(3, 21)) and ks - {3, 4, 8, 16, 20}
