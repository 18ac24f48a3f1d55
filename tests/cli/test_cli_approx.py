"""End-to-end tests of evaluate --plan/--multiplier, finetune and the multipliers commands."""

import pytest
from cli_support import assert_clean_error, run_cli, run_json


def test_evaluate_under_a_multiplier_lists_every_layer(capsys, digits_checkpoint):
    record = run_json(
        capsys, "evaluate", "--checkpoint", str(digits_checkpoint), "--multiplier", "drum:4", "-q"
    )
    float_run, run = record["runs"]
    assert (float_run["label"], run["label"]) == ("float", "drum:4")
    layers = run["approximation"]["layers"]
    assert {layer["multiplier"] for layer in layers} == {"drum:4"}
    assert run["float_top1"] == float_run["top1"] >= run["top1"] - 0.05
    assert run["energy"]["total_pj"] < float_run["energy"]["total_pj"]


def test_evaluate_backend_choice_changes_speed_not_numbers(capsys, digits_checkpoint):
    """--backend forces a kernel; every backend is bit-exact, so the figures agree exactly."""
    args = ("evaluate", "--checkpoint", str(digits_checkpoint), "--multiplier", "mitchell", "-q")
    auto = run_json(capsys, *args, "--no-float")["runs"][0]
    for backend in ("torch", "native"):
        forced = run_json(capsys, *args, "--no-float", "--backend", backend)["runs"][0]
        assert forced["top1"] == auto["top1"] and forced["loss"] == auto["loss"]
        assert forced["plan"]["layers"]["*"]["backend"] == backend
    assert_clean_error(run_cli(capsys, *args, "--backend", "fastest"), "fastest")
    assert_clean_error(
        run_cli(capsys, "evaluate", "--checkpoint", str(digits_checkpoint), "--backend", "torch"),
        "--backend",
    )


def test_evaluate_under_a_plan_reports_exact_layers_with_reason(
    capsys, tmp_path, digits_checkpoint
):
    plan = tmp_path / "plan.yaml"
    plan.write_text("layers:\n  'features.*': {multiplier: 'exact@u8'}\n")
    code, out, err = run_cli(
        capsys, "evaluate", "--checkpoint", str(digits_checkpoint), "--plan", str(plan), "-q"
    )
    assert code == 0, err
    assert "fc" in out and "exact: no plan pattern names it" in out


def test_finetune_recovers_at_least_half_of_a_ten_point_loss(capsys, tmp_path, digits_checkpoint):
    out = tmp_path / "ft.pt"
    record = run_json(
        capsys,
        "finetune",
        "--checkpoint",
        str(digits_checkpoint),
        "--multiplier",
        "trunc:8",
        "--epochs",
        "2",
        "--out",
        str(out),
        "-q",
    )
    assert record["float_top1"] - record["before_top1"] >= 0.10
    assert record["recovered_fraction"] >= 0.5
    again = run_json(capsys, "evaluate", "--checkpoint", str(out), "-q")["runs"][0]
    assert again["label"].startswith("as saved")
    assert again["top1"] == pytest.approx(record["after_top1"])
    assert again["approximation"]["layers"][0]["multiplier"] == "trunc:8"
    cost = run_json(capsys, "cost", "--checkpoint", str(out))
    assert cost["cost"]["layers"]


def test_multipliers_list_and_show(capsys, tmp_path):
    record = run_json(capsys, "multipliers", "list")
    specs = {row["spec"] for row in record["multipliers"]}
    assert "trunc:8@u8" in specs and "mitchell@u8" in specs
    (shown,) = run_json(capsys, "multipliers", "show", "mitchell", "--out", str(tmp_path))[
        "multipliers"
    ]
    assert shown["error_summary"]
    assert shown["metrics"]["wcre_percent"] == pytest.approx(11.1, abs=0.05)
    for png in shown["plots"].values():
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["evaluate", "--checkpoint", "{ck}", "--multiplier", "nosuch:3"], "nosuch"),
        (["evaluate", "--checkpoint", "{ck}", "--plan", "{tmp}/missing.yaml"], "missing.yaml"),
        (["evaluate", "--checkpoint", "{ck}", "--plan", "{badplan}"], "matches no layer"),
        (
            ["evaluate", "--checkpoint", "{ck}", "--multiplier", "lut:{tmp}/missing.bin"],
            "missing.bin",
        ),
        (["evaluate", "--checkpoint", "{ck}", "--multiplier", "lut:{badlut}"], "badlut"),
        (
            [
                "finetune",
                "--checkpoint",
                "{tmp}/missing.pt",
                "--multiplier",
                "drum:4",
                "--out",
                "{tmp}/o.pt",
            ],
            "does not exist",
        ),
        (["finetune", "--checkpoint", "{ck}", "--out", "{tmp}/o.pt"], "--multiplier"),
        (
            [
                "finetune",
                "--checkpoint",
                "{ck}",
                "--multiplier",
                "drum:4",
                "--gradient",
                "magic",
                "--out",
                "{tmp}/o.pt",
            ],
            "magic",
        ),
        (
            [
                "finetune",
                "--checkpoint",
                "{ck}",
                "--multiplier",
                "drum:4",
                "--data",
                "digits:3x32x32",
                "--out",
                "{tmp}/o.pt",
            ],
            "expects inputs",
        ),
        (["multipliers", "show", "nosuch"], "nosuch"),
        (["multipliers", "show", "c:{tmp}/missing.c"], "missing.c"),
        (["multipliers", "list", "--width", "12"], "12"),
    ],
)
def test_bad_input_gives_a_clear_error(capsys, tmp_path, digits_checkpoint, args, needle):
    badplan = tmp_path / "bad.yaml"
    badplan.write_text("layers:\n  'conv*': {multiplier: drum:4}\n")
    badlut = tmp_path / "badlut.bin"
    badlut.write_bytes(b"\x00" * 1000)
    filled = [
        a.format(tmp=tmp_path, ck=digits_checkpoint, badplan=badplan, badlut=badlut) for a in args
    ]
    assert_clean_error(run_cli(capsys, *filled), needle)
