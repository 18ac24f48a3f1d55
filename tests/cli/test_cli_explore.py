"""`axdnn explore` end to end: a front of plan files that `axdnn evaluate --plan` accepts and that
reproduce their recorded validation accuracy; several workers; clean errors."""

import optuna
import pytest
import yaml

from axdnn.search import storage_url

from .cli_support import assert_clean_error, run_cli, run_json

SPACE = {
    "groups": [{"layers": ["*"], "multiplier": ["exact@u8", "exact@u4"], "formats": ["fxp:s2.4"]}],
    "constraints": {"max_drop": 0.03},
}


def _space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    return path


def test_explore_front_plans_reproduce_with_evaluate(capsys, digits_checkpoint, tmp_path):
    out = tmp_path / "out"
    record = run_json(
        capsys, "explore", "--checkpoint", str(digits_checkpoint), "--space", str(_space(tmp_path)),
        "--out", str(out), "--strategy", "random", "--trials", "4", "--subset", "60", "-q",
    )  # fmt: skip
    assert record["trials"] == 4 and record["ran_here"] == 4
    assert (out / "front.png").stat().st_size > 0 and (out / "explore.json").is_file()
    assert record["front"]
    for point in record["front"]:
        shown = run_json(
            capsys, "evaluate", "--checkpoint", str(digits_checkpoint), "--plan",
            point["plan_file"], "--split", "val", "-q",
        )["runs"][-1]  # fmt: skip
        assert shown["top1"] == point["val_accuracy"]
        assert shown["energy"]["total_pj"] == pytest.approx(point["energy_pj"])
        layers = {r["name"]: r for r in shown["approximation"]["layers"]}
        for layer, label in point["choices"].items():
            assert layers[layer]["status"] == "approximate"
            assert layers[layer]["multiplier"] == (label if "@" in label else None)
    code, text, _ = run_cli(
        capsys, "explore", "--checkpoint", str(digits_checkpoint), "--space",
        str(_space(tmp_path)), "--out", str(out), "--strategy", "random", "--trials", "4",
        "--subset", "60", "-q",
    )  # fmt: skip
    assert code == 0 and "4 trials (0 run here)" in text  # the stored study, nothing rerun


def test_explore_workers_share_one_study(capsys, digits_checkpoint, tmp_path):
    out = tmp_path / "out"
    record = run_json(
        capsys, "explore", "--checkpoint", str(digits_checkpoint), "--space", str(_space(tmp_path)),
        "--out", str(out), "--strategy", "random", "--trials", "6", "--subset", "60",
        "--workers", "2", "--no-confirm", "-q",
    )  # fmt: skip
    study = optuna.load_study(study_name="explore-random", storage=storage_url(out / "explore.db"))
    trials = study.get_trials()
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert 6 <= len(trials) <= 7 and record["trials"] == len(trials)
    assert record["ran_here"] == sum(t.user_attrs["worker"] == 0 for t in trials)


def test_explore_errors_are_one_paragraph(capsys, digits_checkpoint, tmp_path):
    base = ["explore", "--checkpoint", str(digits_checkpoint), "--out", str(tmp_path / "o")]
    assert_clean_error(run_cli(capsys, *base, "--space", str(tmp_path / "no.yaml")), "no.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n  - layers: [nothere]\n    multiplier: [exact@u8]\n")
    assert_clean_error(run_cli(capsys, *base, "--space", str(bad)), "matches no layer")
    space = str(_space(tmp_path))
    assert_clean_error(run_cli(capsys, *base, "--space", space, "--strategy", "anneal"), "anneal")
    assert_clean_error(
        run_cli(capsys, *base, "--space", space, "--strategy", "greedy", "--workers", "2"),
        "--workers 1",
    )
