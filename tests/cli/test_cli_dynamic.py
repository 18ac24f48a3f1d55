"""End-to-end: `axdnn dynamic` and the `dynamic` experiment step."""

import json

from cli_support import assert_clean_error, run_cli, run_json

FAST = [
    "--train-limit",
    "300",
    "--calib-limit",
    "60",
    "--test-limit",
    "60",
    "--timing-batch",
    "1,16",
    "--timing-samples",
    "4",
    "-q",
]


def test_dynamic_writes_a_record_within_budget(capsys, tmp_path, digits_checkpoint):
    out = tmp_path / "dyn"
    record = run_json(
        capsys,
        "dynamic",
        "--checkpoint",
        str(digits_checkpoint),
        "--out",
        str(out),
        "--budget",
        "0.5",
        "--config",
        "exit",
        *FAST,
    )
    assert json.loads((out / "dynamic.json").read_text())["configs"] == record["configs"]
    assert [c["name"] for c in record["configs"]] == ["exit"]
    assert record["budget_points"] == 0.5
    code, text, _ = run_cli(
        capsys,
        "dynamic",
        "--checkpoint",
        str(digits_checkpoint),
        "--out",
        str(out),
        "--config",
        "exit",
        *FAST,
    )
    assert code == 0 and "exit" in text and "ops x" in text


def test_dynamic_errors_are_clean(capsys, tmp_path, digits_checkpoint):
    base = ["dynamic", "--checkpoint", str(digits_checkpoint), "--out", str(tmp_path / "d")]
    assert_clean_error(run_cli(capsys, *base, "--config", "warp", *FAST), "warp")
    assert_clean_error(run_cli(capsys, *base, "--budget", "-1", *FAST), "budget")
    assert_clean_error(run_cli(capsys, *base, "--exit", "nowhere", *FAST), "nowhere")


EXPERIMENT = """\
name: dyn-small
model: digits_cnn
data: digits
device: cpu
steps:
  - kind: train
    epochs: 1
  - kind: dynamic
    budget: 1.0
    configs: [exit]
    train_limit: 300
    calib_limit: 60
    test_limit: 60
    exit_epochs: 3
    timing_batches: [1, 16]
    timing_samples: 4
    repeats: 1
"""


def test_dynamic_step_runs_in_an_experiment_with_a_report(capsys, tmp_path):
    file = tmp_path / "dyn.yaml"
    file.write_text(EXPERIMENT)
    out = tmp_path / "run"
    result = run_json(capsys, "run", str(file), "--out", str(out), "-q")
    assert [s["ran"] for s in result["steps"]] == [True, True]
    stored = json.loads((out / "steps" / "dynamic.json").read_text())["record"]
    assert stored["command"] == "dynamic" and stored["configs"][0]["name"] == "exit"
    assert "per-layer skip rate" in (out / "report.html").read_text()
