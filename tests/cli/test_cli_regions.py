"""End-to-end: `axdnn regions list|search|evaluate`, the `regions` experiment step and its
report section, and their errors."""

import json
import shutil
from pathlib import Path

from cli_support import assert_clean_error, run_cli, run_json

EXAMPLE = Path(__file__).parents[2] / "examples" / "regions_sobel.yaml"
TINY = [
    "--trials",
    "3",
    "--samples",
    "512",
    "--held-out",
    "256",
    "--test",
    "256",
    "--epochs",
    "10",
    "--depths",
    "0,1",
    "--widths",
    "2,4",
    "-q",
]


def test_regions_list(capsys):
    record = run_json(capsys, "regions", "list")
    names = [r["name"] for r in record["regions"]]
    assert names[:7] == ["blackscholes", "fft", "inversek2j", "jmeint", "jpeg", "kmeans", "sobel"]
    code, text, _ = run_cli(capsys, "regions", "list")
    assert code == 0 and "18->32->8->2" in text and "miss rate" in text


def test_regions_search_then_evaluate(capsys, tmp_path):
    out = tmp_path / "r"
    step = run_json(
        capsys, "regions", "search", "inversek2j", "--out", str(out), "--bound", "0.9", *TINY
    )
    (record,) = step["regions"]
    assert step["summary"]["regions"] == 1
    assert len(record["trials"]) == 3 and (out / "regions.db").is_file()
    assert record["chosen"]["error"] <= 0.9 and record["baseline"]["text"].startswith("2->8->2")
    checkpoint = Path(record["checkpoint"])
    assert checkpoint == out / "inversek2j.pt" and checkpoint.is_file()
    evaluated = run_json(capsys, "regions", "evaluate", "--checkpoint", str(checkpoint))
    assert evaluated["region"] == "inversek2j" and evaluated["macs"] == record["chosen"]["macs"]
    assert evaluated["energy_pj"] == record["chosen"]["energy_pj"]
    assert evaluated["timing"]["speedup"] > 0
    code, text, _ = run_cli(capsys, "regions", "evaluate", "--checkpoint", str(checkpoint))
    assert code == 0 and "speed-up" in text
    again = run_json(
        capsys,
        "regions",
        "search",
        "inversek2j",
        "--out",
        str(out),
        "--bound",
        "0.9",
        *TINY[:1],
        "4",
        *TINY[2:],
    )["regions"][0]
    assert [t["trial"] for t in again["trials"]] == [0, 1, 2, 3]  # resumed from regions.db
    code, text, _ = run_cli(
        capsys, "regions", "search", "inversek2j", "--out", str(out), "--bound", "0.9", *TINY
    )
    assert code == 0 and "Pareto front" in text


def test_regions_errors(capsys, tmp_path):
    assert_clean_error(run_cli(capsys, "regions", "search", "nope", *TINY), "unknown region")
    assert_clean_error(
        run_cli(capsys, "regions", "search", "fft", "--widths", "2,x", *TINY[:-5]), "--widths"
    )
    assert_clean_error(run_cli(capsys, "regions", "search", "fft", "--cost", "time", *TINY), "cost")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert_clean_error(run_cli(capsys, "regions", "evaluate", "--checkpoint", str(bad)), "bad.pt")


def test_regions_step_and_report(capsys, tmp_path):
    file = tmp_path / "regions_sobel.yaml"
    shutil.copy(EXAMPLE, file)
    out = tmp_path / "run"
    result = run_json(capsys, "run", str(file), "--out", str(out), "-q")
    assert [s["ran"] for s in result["steps"]] == [True]
    stored = json.loads((out / "steps" / "regions.json").read_text())["record"]
    assert stored["regions"][0]["region"]["name"] == "sobel"
    assert stored["summary"]["regions"] == 1
    html = (out / "report.html").read_text()
    assert "Pareto front" in html and "9-&gt;8-&gt;1" in html
    file.write_text(file.read_text().replace("[sobel]", "[nosuchregion]"))
    assert_clean_error(run_cli(capsys, "run", str(file), "--out", str(out), "-q"), "nosuchregion")
