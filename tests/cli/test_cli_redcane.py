"""End-to-end: `axdnn train --model capsnet`, `axdnn redcane` and the `redcane` experiment step
with its report section."""

import json

import pytest
import yaml
from cli_support import assert_clean_error, run_cli, run_json

from axdnn.cli import main
from axdnn.experiment.runner import run_experiment, step_records
from axdnn.report import build_report

FAST = ["--magnitudes", "0.1,1", "--means", "", "--repeats", "1", "--limit", "40", "--calib-limit", "64",
        "--multiplier", "drum:4@u8", "--multiplier", "etm:4@u8", "-q"]  # fmt: skip


@pytest.fixture(scope="module")
def caps_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("caps") / "caps.pt"
    args = ["train", "--model", "capsnet", "--data", "digits", "--epochs", "2", "--out", str(path)]
    assert main([*args, "-q"]) == 0
    return path


def test_redcane_ranks_operations_and_confirms_its_choice(capsys, tmp_path, caps_checkpoint):
    out = tmp_path / "rc"
    record = run_json(capsys, "redcane", "--checkpoint", str(caps_checkpoint), "--out", str(out),
                      "--budget", "2", *FAST)  # fmt: skip
    assert json.loads((out / "redcane.json").read_text())["ranking"] == record["ranking"]
    ops = [r["operation"] for r in record["ranking"]]
    assert sorted(ops) == sorted(
        ["conv1", "primary", "votes", "routing_softmax", "weighted_sum", "squash", "agreement",
         "lengths"]
    )  # fmt: skip
    assert record["groups"]["first"][0] == "routing_softmax"
    assert {c["operation"] for c in record["choices"]} == {
        "conv1", "primary", "votes", "weighted_sum", "agreement"
    }  # fmt: skip
    assert record["confirmation"]["within_budget"]
    code, text, _ = run_cli(capsys, "redcane", "--checkpoint", str(caps_checkpoint), "--out",
                            str(out), *FAST, "--no-confirm", "--magnitudes", "1")  # fmt: skip
    assert code == 0 and "routing more resilient than convolutions" in text


def test_redcane_errors_are_clean(capsys, tmp_path, caps_checkpoint):
    base = ["redcane", "--checkpoint", str(caps_checkpoint), "--out", str(tmp_path / "r")]
    assert_clean_error(run_cli(capsys, *base, *FAST, "--relative-to", "range"), "relative")
    assert_clean_error(run_cli(capsys, *base, *FAST, "--magnitudes", "0"), "--magnitudes")
    assert_clean_error(run_cli(capsys, *base, *FAST, "--magnitudes", "a"), "--magnitudes")
    assert_clean_error(run_cli(capsys, *base, *FAST, "--budget", "-1"), "--budget")


def test_redcane_step_and_report(tmp_path):
    steps = [
        {"kind": "train", "name": "caps", "model": "capsnet", "epochs": 1, "batch_size": 128},
        {"kind": "redcane", "magnitudes": [0.5], "means": [0.2], "repeats": 1, "limit": 40, "calib_limit": 32,
         "candidates": ["drum:4@u8"], "budget": 5},
    ]  # fmt: skip
    file = tmp_path / "exp.yaml"
    file.write_text(yaml.safe_dump({"name": "caps", "data": "digits", "steps": steps}))
    run_experiment(file, tmp_path / "run", progress=False, say=lambda _: None, report=False)
    record = step_records(tmp_path / "run")["redcane"]
    assert record["samples"] == 40 and record["choices"]
    text = build_report(tmp_path / "run").read_text()
    assert "accuracy against noise magnitude" in text and "routing_softmax" in text
