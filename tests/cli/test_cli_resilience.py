"""End-to-end tests of `axdnn resilience` and `axdnn significance`."""

import pytest
from cli_support import assert_clean_error, run_cli, run_json


def test_resilience_ranks_every_layer_and_writes_a_plot(capsys, tmp_path, digits_checkpoint):
    out = tmp_path / "res"
    record = run_json(
        capsys,
        "resilience",
        "--checkpoint",
        str(digits_checkpoint),
        "--out",
        str(out),
        "--limit",
        "64",
        "--repeats",
        "1",
        "--magnitudes",
        "0.5,2",
        "--campaign",
        "bitflip:int8",
        "--trials",
        "32",
    )
    assert (out / "resilience.json").is_file() and (out / "sensitivity.png").is_file()
    assert record["samples"] == 64
    assert "campaign" in record


def test_significance_compares_pruning_criteria(capsys, tmp_path, digits_checkpoint):
    out = tmp_path / "sig"
    code, text, err = run_cli(
        capsys,
        "significance",
        "--checkpoint",
        str(digits_checkpoint),
        "--out",
        str(out),
        "--limit",
        "64",
        "--layer",
        "features.0",
        "--fractions",
        "0.25,0.5",
    )
    assert code == 0, err
    assert "significant" in text and "L1 norm" in text
    assert (out / "significance.json").is_file() and (out / "significance.png").is_file()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["resilience", "--checkpoint", "{tmp}/missing.pt"], "does not exist"),
        (
            ["resilience", "--checkpoint", "{ck}", "--site", "nosuch:output", "--limit", "16"],
            "nosuch",
        ),
        (
            ["resilience", "--checkpoint", "{ck}", "--error-model", "bogus:1", "--limit", "16"],
            "bogus",
        ),
        (["resilience", "--checkpoint", "{ck}", "--magnitudes", "a,b", "--limit", "16"], "a,b"),
        (["resilience", "--checkpoint", "{ck}", "--data", "digits:3x32x32"], "expects inputs"),
        (["significance", "--checkpoint", "{tmp}/missing.pt"], "does not exist"),
        (["significance", "--checkpoint", "{ck}", "--layer", "nosuch", "--limit", "16"], "nosuch"),
        (["significance", "--checkpoint", "{ck}", "--data", "nosuchdata"], "nosuchdata"),
    ],
)
def test_bad_input_gives_a_clear_error(capsys, tmp_path, digits_checkpoint, args, needle):
    filled = [a.format(tmp=tmp_path, ck=digits_checkpoint) for a in args]
    assert_clean_error(run_cli(capsys, *filled, "--out", str(tmp_path / "o")), needle)
