"""End-to-end: hostile checkpoints and bad options give exit 2 and a clear message, and no
checkpoint makes axdnn import, call or compile code the user did not name."""

import pytest
import torch
from cli_support import assert_clean_error, run_cli, run_json

from axdnn.models import build_model
from axdnn.models.checkpoint import Checkpoint, save_checkpoint

FACTORY = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
from torch import nn

def make(in_channels, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 64, num_classes))
"""


@pytest.fixture
def factory_checkpoint(tmp_path):
    marker = tmp_path / "ran.txt"
    source = tmp_path / "user_model.py"
    source.write_text(FACTORY.format(marker=str(marker)))
    spec = f"{source}:make"
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    path = save_checkpoint(
        tmp_path / "user.pt",
        Checkpoint(
            model_name=spec,
            model_kwargs={"in_channels": 1, "num_classes": 10},
            state_dict=net.state_dict(),
            data_spec="digits",
            input_shape=(1, 8, 8),
        ),
    )
    return path, spec, marker


def test_a_checkpoint_factory_runs_only_when_trusted(capsys, factory_checkpoint):
    path, spec, marker = factory_checkpoint
    result = run_cli(capsys, "evaluate", "--checkpoint", str(path), "-q")
    assert_clean_error(result, "--trust-model")
    assert spec in result[2] and not marker.exists()
    for command in (["cost", "--checkpoint", str(path)], ["evaluate", "--checkpoint", str(path)]):
        assert_clean_error(run_cli(capsys, *command), "never runs code")
    assert not marker.exists()
    record = run_json(capsys, "--trust-model", spec, "evaluate", "--checkpoint", str(path), "-q")
    assert record["runs"][0]["samples"] == 359 and marker.exists()
    marker.unlink()  # trust ends with the command
    assert_clean_error(run_cli(capsys, "evaluate", "--checkpoint", str(path)), "--trust-model")
    assert not marker.exists()


def test_bad_options_and_paths_are_clear_errors(capsys, tmp_path, digits_checkpoint):
    common = ("--checkpoint", str(digits_checkpoint), "--multiplier", "drum:4@u8", "-q")
    out = ("--out", str(tmp_path / "ft.pt"))
    assert_clean_error(run_cli(capsys, "finetune", *common, *out, "--distill", "1.5"), "--distill")
    assert_clean_error(run_cli(capsys, "evaluate", "--checkpoint", str(tmp_path)), "is a folder")
    missing = ("--data", f"mnist:{tmp_path / 'nothing'}")
    result = run_cli(capsys, "evaluate", "--checkpoint", str(digits_checkpoint), *missing)
    assert_clean_error(result, "does not exist")


def _saved(tmp_path, **changes):
    lenet = build_model("lenet5", in_channels=1, num_classes=10)
    fields = dict(
        model_name="lenet5",
        model_kwargs={"in_channels": 1, "num_classes": 10},
        state_dict=lenet.state_dict(),
        data_spec="digits",
        input_shape=(1, 8, 8),
    )
    fields.update(changes)
    return save_checkpoint(tmp_path / "hostile.pt", Checkpoint(**fields))


def _module_function(tmp_path):
    log = tmp_path / "created.log"
    kwargs = {"filename": str(log)}
    return _saved(tmp_path, model_name="logging:basicConfig", model_kwargs=kwargs), log


def _c_plan(tmp_path):
    source = tmp_path / "mul.c"
    marker = tmp_path / "compiled"
    source.write_text("#include <stdint.h>\nuint16_t mul(uint8_t a, uint8_t b) { return a * b; }\n")
    plan = {"layers": {"*": {"multiplier": f"c:{source}@u8"}}}
    return _saved(tmp_path, extra={"plan": plan}), marker


def _flipped(tmp_path):
    path = _saved(tmp_path)
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    for i in range(middle, middle + 64):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path, tmp_path / "nothing-to-create"


@pytest.mark.parametrize(
    "make, needle",
    [
        (_module_function, "never runs code"),
        (_c_plan, "--trust-c-models"),
        (_flipped, "checkpoint"),
    ],
    ids=["module-function", "c-plan", "flipped-bytes"],
)
def test_hostile_checkpoints_exit_2_and_run_nothing(capsys, tmp_path, make, needle):
    path, side_effect = make(tmp_path)
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(path), "-q")
    assert code == 2
    assert_clean_error((code, out, err), needle)
    assert not side_effect.exists()
