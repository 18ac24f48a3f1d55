"""End-to-end: `axdnn run` (an experiment file to records and a report, cached on rerun),
`axdnn run --schema`, `axdnn report`, and their errors."""

import json

from cli_support import assert_clean_error, run_cli, run_json

SMALL = """\
name: cli-small
model: digits_cnn
data: digits
device: cpu
steps:
  - kind: train
    epochs: 1
  - kind: evaluate
    checkpoint: ${train.checkpoint}
    multipliers: [drum:4@u8]
  - kind: cost
"""


def test_run_writes_records_and_report_then_caches(capsys, tmp_path):
    file = tmp_path / "small.yaml"
    file.write_text(SMALL)
    out = tmp_path / "run"
    first = run_json(capsys, "run", str(file), "--out", str(out), "-q")
    assert [s["ran"] for s in first["steps"]] == [True, True, True]
    report = out / "report.html"
    assert first["report"] == str(report) and report.is_file()
    evaluated = json.loads((out / "steps" / "evaluate.json").read_text())["record"]
    assert [r["label"] for r in evaluated["runs"]] == ["float", "drum:4@u8"]
    again = run_json(capsys, "run", str(file), "--out", str(out), "-q")
    assert [s["ran"] for s in again["steps"]] == [False, False, False]
    code, text, _ = run_cli(capsys, "run", str(file), "--out", str(out), "-q")
    assert code == 0 and "cached" in text and text.strip().endswith(f"report: {report}")

    other = tmp_path / "other.html"
    assert run_json(capsys, "report", str(out), "--out", str(other)) == {"report": str(other)}
    assert "cli-small" in other.read_text()


def test_relative_run_folder_and_experiment_elsewhere(capsys, tmp_path, monkeypatch):
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "small.yaml").write_text(SMALL)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # --out relative to here, the file's paths relative to studies/
    result = run_json(capsys, "run", "../studies/small.yaml", "--out", "run", "-q")
    assert result["report"] == str(work / "run" / "report.html")
    assert all(s["ran"] for s in result["steps"])


def test_schema_is_json_schema(capsys):
    code, text, _ = run_cli(capsys, "run", "--schema")
    schema = json.loads(text)
    assert code == 0 and "steps" in schema["properties"]


def test_bad_experiment_files_are_clean_errors(capsys, tmp_path):
    assert_clean_error(run_cli(capsys, "run", str(tmp_path / "none.yaml")), "does not exist")
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL.replace("epochs: 1", "epochs: 0"))
    result = run_cli(capsys, "run", str(bad), "--out", str(tmp_path / "r"))
    assert_clean_error(result, "bad.yaml:7: steps.0.train.epochs")
    assert_clean_error(run_cli(capsys, "run"), "needs an experiment file")


def test_demo_show_prints_the_shipped_file(capsys):
    code, text, _ = run_cli(capsys, "demo", "--show")
    assert code == 0 and text.startswith("# The quick-start study") and "kind: train" in text
