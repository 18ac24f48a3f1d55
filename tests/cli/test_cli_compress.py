"""`axdnn prune` and `axdnn share` end to end on the digits checkpoint."""

import json

import torch

from axdnn.cost import count_ops
from axdnn.models.checkpoint import load_checkpoint
from tests.cli.cli_support import assert_clean_error, run_cli, run_json


def test_prune_writes_a_smaller_checkpoint_that_reloads(capsys, digits_checkpoint, tmp_path):
    out = tmp_path / "pruned.pt"
    rec = run_json(capsys, "prune", "--checkpoint", str(digits_checkpoint), "--ratio", "0.5",
                   "--out", str(out), "-q")  # fmt: skip
    assert rec["reload_identical"] is True
    model = load_checkpoint(out).build()
    report = count_ops(model, (1, 8, 8))
    assert report.total_macs == rec["pruning"]["macs_after"] < rec["pruning"]["macs_before"]
    assert report.total_params == rec["pruning"]["params_after"]
    assert load_checkpoint(out).metrics["test_top1"] == rec["accuracy_after"]
    assert rec["accuracy_before"] > 0.9


def test_prune_with_folded_batchnorm_saves_the_inference_form(capsys, digits_checkpoint,
                                                               tmp_path):
    out = tmp_path / "deployed.pt"
    rec = run_json(capsys, "prune", "--checkpoint", str(digits_checkpoint), "--ratio", "0.5",
                   "--fold-bn", "--out", str(out), "-q")  # fmt: skip
    assert rec["reload_identical"] is True
    model = load_checkpoint(out).build()
    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert rec["folded_batchnorm"] == 3 and batchnorms == []  # digits_cnn's three
    report = count_ops(model, (1, 8, 8))
    assert report.total_macs == rec["pruning"]["macs_after"]
    assert report.total_params == rec["params_saved"] < rec["pruning"]["params_after"]
    assert abs(rec["accuracy_after"] - load_checkpoint(out).metrics["test_top1"]) == 0


def test_prune_with_finetuning_and_text_output(capsys, digits_checkpoint, tmp_path):
    out = tmp_path / "p.pt"
    code, text, err = run_cli(capsys, "prune", "--checkpoint", str(digits_checkpoint),
                              "--ratio", "0.5", "--steps", "2", "--epochs", "1", "--out",
                              str(out), "-q")  # fmt: skip
    assert code == 0, err
    assert "MACs" in text and "reloads to identical outputs: yes" in text
    assert load_checkpoint(out).metrics["test_top1"] > 0.5


def test_share_compresses_within_budget(capsys, digits_checkpoint, tmp_path):
    out = tmp_path / "shared.pt"
    rec = run_json(capsys, "share", "--checkpoint", str(digits_checkpoint), "--budget", "0.01",
                   "--trials", "12", "--k-max", "32", "--out", str(out), "-q")  # fmt: skip
    assert rec["cost"]["compression_ratio"] > 3
    assert rec["search"]["best"]["drop"] <= 0.01
    model = load_checkpoint(out).build()
    for name, k in rec["ks"].items():
        weight = dict(model.named_modules())[name].weight
        assert torch.unique(weight).numel() <= k


def test_bad_options_are_clean_errors(capsys, digits_checkpoint, tmp_path):
    out = str(tmp_path / "x.pt")
    assert_clean_error(run_cli(capsys, "prune", "--checkpoint", str(digits_checkpoint),
                               "--ratio", "1.2", "--out", out), "1.2")  # fmt: skip
    assert_clean_error(run_cli(capsys, "prune", "--checkpoint", str(digits_checkpoint),
                               "--criterion", "magic", "--out", out), "magic")  # fmt: skip
    assert_clean_error(
        run_cli(
            capsys,
            "share",
            "--checkpoint",
            str(digits_checkpoint),
            "--k-min",
            "9",
            "--k-max",
            "3",
            "--out",
            out,
        ),
        "k range",
    )


EXPERIMENT = """\
name: compress-small
model: digits_cnn
data: digits
device: cpu
steps:
  - kind: train
    epochs: 2
  - kind: prune
    ratio: 0.5
    criterion: bn
  - kind: share
    checkpoint: ${train.checkpoint}
    budget: 0.02
    k_max: 64
    trials: 8
  - kind: cost
    checkpoint: ${prune.checkpoint}
"""


def test_experiment_steps_and_report_sections(capsys, tmp_path):
    file = tmp_path / "compress.yaml"
    file.write_text(EXPERIMENT)
    out = tmp_path / "run"
    rec = run_json(capsys, "run", str(file), "--out", str(out), "-q")
    assert [s["ran"] for s in rec["steps"]] == [True, True, True, True]
    pruned = json.loads((out / "steps" / "prune.json").read_text())["record"]
    cost = json.loads((out / "steps" / "cost.json").read_text())["record"]["cost"]
    assert cost["total_macs"] == pruned["pruning"]["macs_after"]  # the cost model agrees
    html = (out / "report.html").read_text()
    assert "per-layer k" in html and "filters after" in html and "compression ratio" in html


def test_prune_by_significance_and_taylor(capsys, digits_checkpoint, tmp_path):
    for criterion in ("significance", "taylor"):
        out = tmp_path / f"{criterion}.pt"
        rec = run_json(capsys, "prune", "--checkpoint", str(digits_checkpoint), "--ratio",
                       "0.25", "--criterion", criterion, "--limit", "48", "--out", str(out),
                       "-q")  # fmt: skip
        assert rec["pruning"]["criterion"] == criterion and rec["reload_identical"]
        assert rec["pruning"]["macs_after"] < rec["pruning"]["macs_before"]
