"""End-to-end tests of the foundation commands: demo, train, evaluate, cost."""

import json

import pytest
import torch
from cli_support import assert_clean_error, run_cli, run_json


def test_demo_runs_its_experiment_and_writes_the_report(capsys, tmp_path):
    out = tmp_path / "demo"
    code, text, err = run_cli(capsys, "demo", "--out", str(out), "-q")
    assert code == 0, err
    assert "test top-1" in text and "fine-tuned" in text
    assert text.strip().endswith(f"report: {out / 'report.html'}")
    step = lambda name: json.loads((out / "steps" / f"{name}.json").read_text())["record"]  # noqa: E731
    assert step("train")["test"]["top1"] >= 0.97
    runs = step("evaluate")["runs"]
    assert [r["label"] for r in runs] == ["float", "drum:4@u8", "mitchell@u8", "trunc:8@u8"]
    assert all(r["top1"] <= r["float_top1"] for r in runs[1:])
    tuned = step("finetune")
    assert tuned["after_top1"] > tuned["before_top1"]
    assert step("cost")["cost"]["layers"] and step("resilience")["sensitivity"]["ranking"]
    assert step("significance")["pruning"] and step("multipliers")["multipliers"]
    assert [r["label"] for r in step("formats")["runs"]] == ["float", "fxp:s2.2", "fpec:s2.2,c=1"]
    assert step("selection")["real_accuracy"] is not None
    html = (out / "report.html").read_text()
    assert "demo" in html and "<svg" in html


def test_train_writes_a_checkpoint_that_evaluate_reads(capsys, digits_checkpoint):
    (record,) = run_json(capsys, "evaluate", "--checkpoint", str(digits_checkpoint), "-q")["runs"]
    assert record["samples"] == 359
    assert 0.5 < record["top1"] <= record["top5"] <= 1.0
    confusion = torch.tensor(record["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 359
    assert record["top1"] == pytest.approx(confusion.diagonal().sum().item() / 359)
    assert len(record["per_class_accuracy"]) == 10


def test_train_is_deterministic(capsys, tmp_path):
    args = ["train", "--model", "digits_cnn", "--epochs", "1", "-q", "--json"]
    a = run_json(capsys, *args[:-1], "--out", str(tmp_path / "a.pt"))
    b = run_json(capsys, *args[:-1], "--out", str(tmp_path / "b.pt"))
    assert a["test"] == b["test"]
    sa = torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]
    sb = torch.load(tmp_path / "b.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_cost_of_a_checkpoint_and_of_a_zoo_model(capsys, digits_checkpoint):
    record = run_json(capsys, "cost", "--checkpoint", str(digits_checkpoint))
    assert record["cost"]["layers"][0]["macs"] > 0
    record = run_json(capsys, "cost", "--model", "resnet20", "--input", "3x32x32")
    total = sum(layer["macs"] for layer in record["cost"]["layers"])
    assert abs(total - 40.6e6) / 40.6e6 < 0.02
    code, out, _ = run_cli(capsys, "cost", "--model", "lenet5", "--input", "1x28x28")
    assert code == 0 and "total" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--model", "nosuchnet", "--out", "{tmp}/x.pt", "--epochs", "1"], "nosuchnet"),
        (
            ["train", "--model", "digits_cnn", "--data", "nosuchdata", "--out", "{tmp}/x.pt"],
            "nosuchdata",
        ),
        (
            [
                "train",
                "--model",
                "digits_cnn",
                "--data",
                "mnist:{tmp}/missing",
                "--out",
                "{tmp}/x.pt",
            ],
            "missing",
        ),
        (
            [
                "train",
                "--model",
                "vgg16",
                "--data",
                "digits:1x8x8",
                "--out",
                "{tmp}/x.pt",
                "--epochs",
                "1",
            ],
            "cannot take inputs",
        ),
        (["evaluate", "--checkpoint", "{tmp}/missing.pt"], "does not exist"),
        (["evaluate", "--checkpoint", "{corrupt}"], "corrupt"),
        (["evaluate", "--checkpoint", "{ck}", "--data", "nosuchdata"], "nosuchdata"),
        (
            ["evaluate", "--checkpoint", "{ck}", "--data", "digits:3x32x32"],
            "expects inputs of shape 1x8x8",
        ),
        (["cost", "--checkpoint", "{tmp}/missing.pt"], "does not exist"),
        (["cost", "--checkpoint", "{corrupt}"], "corrupt"),
        (["cost", "--model", "nosuchnet", "--input", "3x32x32"], "nosuchnet"),
        (["cost", "--model", "resnet20", "--input", "3by32"], "bad input shape"),
        (["cost", "--model", "vgg16", "--input", "3x4x4"], "(3, 4, 4)"),
        (
            [
                "cost",
                "--model",
                "resnet20",
                "--input",
                "3x32x32",
                "--energy-table",
                "{tmp}/missing.yaml",
            ],
            "missing.yaml",
        ),
    ],
)
def test_bad_input_gives_one_paragraph_and_no_traceback(
    capsys, tmp_path, digits_checkpoint, corrupt_file, args, needle
):
    filled = [a.format(tmp=tmp_path, ck=digits_checkpoint, corrupt=corrupt_file) for a in args]
    assert_clean_error(
        run_cli(capsys, *filled, "-q")
        if filled[0] in ("train", "evaluate")
        else run_cli(capsys, *filled),
        needle,
    )


def test_checkpoint_with_wrong_shapes_is_a_clear_error(capsys, tmp_path, digits_checkpoint):
    payload = torch.load(digits_checkpoint, weights_only=True)
    payload["model_kwargs"]["num_classes"] = 7
    bad = tmp_path / "wrong.pt"
    torch.save(payload, bad)
    assert_clean_error(run_cli(capsys, "evaluate", "--checkpoint", str(bad), "-q"), "do not fit")
    payload["model"] = "nosuchnet"
    torch.save(payload, bad)
    assert_clean_error(run_cli(capsys, "evaluate", "--checkpoint", str(bad), "-q"), "nosuchnet")


def test_demo_into_a_file_path_is_a_clear_error(capsys, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    assert_clean_error(run_cli(capsys, "demo", "--out", str(target), "-q"), "not a folder")


def test_unwritable_output_is_a_clear_error_before_training(capsys, tmp_path, monkeypatch):
    import axdnn.experiment.commands as commands

    def no_training(*_args, **_kwargs):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr(commands, "fit", no_training)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    args = ("train", "--model", "digits_cnn", "--epochs", "1", "--out", str(blocker / "ck.pt"))
    assert_clean_error(run_cli(capsys, *args, "-q"), "blocker")


def test_zero_epochs_is_a_clear_error(capsys, tmp_path):
    args = ("train", "--model", "digits_cnn", "--epochs", "0", "--out", str(tmp_path / "c.pt"))
    assert_clean_error(
        run_cli(capsys, *args, "-q"), "--epochs: Input should be greater than or equal to 1"
    )
    assert not (tmp_path / "c.pt").exists()
