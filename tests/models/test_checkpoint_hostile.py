"""Hostile and damaged checkpoints: loading one never imports, calls or compiles anything the
user did not name, and damaged weights are an error, not a lower accuracy."""

import json
import zipfile

import pytest
import torch

from axdnn.errors import CheckpointError
from axdnn.experiment.common import build_from_checkpoint
from axdnn.models import build_model
from axdnn.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from axdnn.runtime import trusting

FACTORY = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
from torch import nn

def make(in_channels, num_classes):
    pathlib.Path({marker!r}).write_text("called")
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, num_classes))
"""


def save(tmp_path, name="ck.pt", **changes):
    model = build_model("lenet5", in_channels=1, num_classes=10)
    fields = dict(
        model_name="lenet5",
        model_kwargs={"in_channels": 1, "num_classes": 10},
        state_dict=model.state_dict(),
        data_spec="digits",
        input_shape=(1, 8, 8),
    )
    fields.update(changes)
    return save_checkpoint(tmp_path / name, Checkpoint(**fields))


@pytest.fixture
def factory_file(tmp_path):
    marker = tmp_path / "ran.txt"
    path = tmp_path / "evil_model.py"
    path.write_text(FACTORY.format(marker=str(marker)))
    return path, marker


def test_a_stored_file_factory_is_neither_imported_nor_called(tmp_path, factory_file):
    path, marker = factory_file
    spec = f"{path}:make"
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    ck_path = save(tmp_path, model_name=spec, state_dict=net.state_dict())
    ck = load_checkpoint(ck_path)
    with pytest.raises(CheckpointError) as err:
        ck.build()
    assert spec in str(err.value) and "--trust-model" in str(err.value)
    assert not marker.exists()
    with trusting(models=[spec]):  # named by the user: allowed
        ck.build()
    assert marker.read_text() == "called"


def test_a_stored_module_function_with_arguments_is_not_called(tmp_path):
    log = tmp_path / "truncated.log"
    ck = load_checkpoint(
        save(tmp_path, model_name="logging:basicConfig", model_kwargs={"filename": str(log)})
    )
    with pytest.raises(CheckpointError, match="logging:basicConfig"):
        ck.build()
    assert not log.exists()


def test_stored_arguments_must_be_plain_values(tmp_path):
    ck = load_checkpoint(save(tmp_path, model_kwargs={"in_channels": 1, "x": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="plain values"):
        ck.build()


def test_a_stored_c_model_plan_is_not_compiled(tmp_path):
    source = tmp_path / "mul.c"
    source.write_text("#include <stdint.h>\nuint16_t mul(uint8_t a, uint8_t b) { return a * b; }\n")
    plan = {"layers": {"*": {"multiplier": f"c:{source}@u8"}}}
    ck = load_checkpoint(save(tmp_path, extra={"plan": plan}))
    with pytest.raises(CheckpointError, match="--trust-c-models") as err:
        build_from_checkpoint(ck)
    assert f"c:{source}" in str(err.value)


def test_flipped_bytes_in_the_weights_are_an_error(tmp_path):
    path = save(tmp_path)
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if "/data/" in n]
        biggest = max(names, key=lambda n: archive.getinfo(n).file_size)
        offset = archive.getinfo(biggest).header_offset
    raw = bytearray(path.read_bytes())
    start = offset + 200  # inside the largest tensor's bytes (zip entries are stored raw)
    for i in range(start, start + 64):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="weights do not match the hash") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_the_hash_is_stored_and_a_clean_file_loads(tmp_path):
    path = save(tmp_path)
    payload = torch.load(path, weights_only=True)
    assert len(payload["weights_sha256"]) == 64
    assert load_checkpoint(path).model_name == "lenet5"


def test_a_pickle_payload_is_refused_without_torch_advice(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "model": "lenet5", "state_dict": {}, "x": Evil()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "weights_only=False" not in message and "could run code" in message
    assert "\n" not in message


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        load_checkpoint(tmp_path)


def test_extra_survives_as_plain_json(tmp_path):
    extra = {"plan": {"layers": {"*": {"multiplier": "drum:4@u8"}}}}
    ck = load_checkpoint(save(tmp_path, extra=extra))
    assert json.loads(json.dumps(ck.extra)) == extra


def test_a_changed_table_file_is_an_error(tmp_path):
    import numpy as np

    from axdnn.arith.spec import get_multiplier
    from axdnn.experiment.approx import table_hashes
    from axdnn.nn import Plan, approximate

    table = tmp_path / "mul.npy"
    exact = np.outer(np.arange(256), np.arange(256)).astype(np.int64)
    np.save(table, exact)
    plan = Plan.uniform(f"lut:{table}@u8")
    extra = {"plan": plan.model_dump(), "table_hashes": table_hashes(plan)}
    tuned = approximate(build_model("lenet5", in_channels=1, num_classes=10), plan, None)
    ck = load_checkpoint(save(tmp_path, extra=extra, state_dict=tuned.state_dict()))
    build_from_checkpoint(ck)  # the same table: fine
    exact[3, 5] += 1
    np.save(table, exact)
    getattr(get_multiplier, "cache_clear", lambda: None)()
    with pytest.raises(CheckpointError, match="table has changed"):
        build_from_checkpoint(ck)
