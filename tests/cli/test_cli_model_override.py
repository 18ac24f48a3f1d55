"""`--model` on every command that takes `--checkpoint`: a checkpoint whose factory file moved
loads with the new place named, and a stored file factory is imported only when the user names
it (on the command line, or in an experiment file)."""

import shutil

import pytest
import yaml
from cli_support import assert_clean_error, run_cli, run_json

from axdnn.experiment.runner import run_experiment, step_records

FACTORY = """
from torch import nn

def make(in_channels, num_classes):
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 64, num_classes),
    )
"""


@pytest.fixture(scope="module")
def moved_checkpoint(tmp_path_factory):
    """A checkpoint trained from `old/net.py:make`, whose file then moved to `new/net.py`."""
    tmp = tmp_path_factory.mktemp("moved")
    (tmp / "old").mkdir()
    (tmp / "old" / "net.py").write_text(FACTORY)
    ck = tmp / "net.pt"
    args = ["train", "--model", f"{tmp / 'old' / 'net.py'}:make", "--epochs", "1"]
    assert run_cli_plain([*args, "--out", str(ck), "-q"]) == 0
    (tmp / "new").mkdir()
    shutil.move(tmp / "old" / "net.py", tmp / "new" / "net.py")
    return ck, f"{tmp / 'old' / 'net.py'}:make", f"{tmp / 'new' / 'net.py'}:make"


def run_cli_plain(args):
    from axdnn.cli import main

    return main(args)


def test_a_stored_file_factory_is_never_imported_unless_named(capsys, moved_checkpoint):
    ck, old, _ = moved_checkpoint
    result = run_cli(capsys, "evaluate", "--checkpoint", str(ck), "-q")
    assert_clean_error(result, "never runs code")
    assert old in result[2] and "--trust-model" in result[2]


def test_model_names_where_the_factory_went(capsys, moved_checkpoint, tmp_path):
    ck, old, new = moved_checkpoint
    base = ("--checkpoint", str(ck), "--model", new)
    (run,) = run_json(capsys, "evaluate", *base, "-q")["runs"]
    assert run["samples"] == 359 and run["model"] == new
    assert run_json(capsys, "cost", *base)["cost"]["layers"]
    ft = tmp_path / "ft.pt"
    tuned = run_json(
        capsys, "finetune", *base, "--multiplier", "trunc:8@u8", "--epochs", "1",
        "--out", str(ft), "-q",
    )  # fmt: skip
    assert tuned["model"] == new  # the new checkpoint stores the new place
    out = ("--out", str(tmp_path / "r"))
    assert run_json(capsys, "resilience", *base, "--magnitudes", "1", "--limit", "32", *out)
    assert run_json(capsys, "significance", *base, "--fractions", "0.25", "--limit", "32", *out)[
        "filters"
    ]
    # the old place fails as a missing file, named
    assert_clean_error(
        run_cli(capsys, "evaluate", "--checkpoint", str(ck), "--model", old, "-q"), "net.py"
    )


def test_a_model_that_does_not_fit_the_weights_is_a_clean_error(capsys, moved_checkpoint):
    ck, _, _ = moved_checkpoint
    result = run_cli(capsys, "evaluate", "--checkpoint", str(ck), "--model", "digits_cnn", "-q")
    assert_clean_error(result, "do not fit")


def test_an_experiment_step_names_the_factory_too(moved_checkpoint, tmp_path):
    ck, _, new = moved_checkpoint
    file = tmp_path / "exp.yaml"
    step = {"kind": "evaluate", "checkpoint": str(ck), "model": new, "include_float": True}
    file.write_text(yaml.safe_dump({"name": "moved", "steps": [step]}))
    run_experiment(file, tmp_path / "run", progress=False, say=lambda _: None, report=False)
    assert step_records(tmp_path / "run")["evaluate"]["runs"][0]["model"] == new
