import pytest
import torch

from axdnn.errors import CheckpointError
from axdnn.models import build_model
from axdnn.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint


def make(tmp_path, **changes):
    model = build_model("lenet5", in_channels=1, num_classes=10)
    fields = dict(
        model_name="lenet5",
        model_kwargs={"in_channels": 1, "num_classes": 10},
        state_dict=model.state_dict(),
        data_spec="digits:1x16x16",
        input_shape=(1, 16, 16),
        metrics={"test_top1": 0.5},
    )
    fields.update(changes)
    return model, save_checkpoint(tmp_path / "ck.pt", Checkpoint(**fields))


def test_round_trip_restores_everything(tmp_path):
    model, path = make(tmp_path)
    ck = load_checkpoint(path)
    assert (ck.model_name, ck.data_spec, ck.input_shape, ck.metrics) == (
        "lenet5",
        "digits:1x16x16",
        (1, 16, 16),
        {"test_top1": 0.5},
    )
    rebuilt = ck.build()
    x = torch.randn(2, 1, 16, 16)
    model.eval()
    assert torch.equal(rebuilt(x), model(x))


def test_loading_is_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save(
        {"format": 1, "model": "lenet5", "model_kwargs": {}, "state_dict": {}, "x": Evil()}, path
    )
    with pytest.raises(CheckpointError, match="corrupt or not an axdnn checkpoint"):
        load_checkpoint(path)


def test_foreign_and_corrupt_files(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an axdnn checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00\x01junk")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_mismatched_weights_and_unknown_models(tmp_path):
    _, path = make(tmp_path, model_kwargs={"in_channels": 1, "num_classes": 7})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(path).build()
    _, path = make(tmp_path, model_name="nosuchnet")
    with pytest.raises(CheckpointError, match="nosuchnet"):
        load_checkpoint(path).build()
