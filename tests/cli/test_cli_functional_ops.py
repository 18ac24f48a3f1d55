"""`axdnn evaluate --multiplier` on a user's model with functional attention: F.linear and the
matmuls run on the table (the same figures on the reference backend) and the report accounts
for every counted MAC (issue 14)."""

from pathlib import Path

import pytest
from cli_support import run_json

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "attention_net.py"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from axdnn.cli import main

    ck = tmp_path_factory.mktemp("attn") / "net.pt"
    args = ["train", "--model", f"{EXAMPLE}:make", "--epochs", "1", "--out", str(ck), "-q"]
    assert main(args) == 0
    return ck


def _runs(capsys, checkpoint, *extra):
    base = ("evaluate", "--checkpoint", str(checkpoint), "--model", f"{EXAMPLE}:make", "-q")
    return run_json(capsys, *base, "--multiplier", "drum:4", *extra)["runs"]


def test_functional_ops_run_on_the_table_and_every_mac_is_reported(capsys, checkpoint):
    float_run, approx = _runs(capsys, checkpoint)
    layers = {x["name"]: x for x in approx["approximation"]["layers"]}
    for site in ("attn.linear#0", "attn.matmul#0", "attn.matmul#1", "attn.linear#1", "linear#0"):
        assert layers[site]["status"] == "approximate" and layers[site]["multiplier"] == "drum:4"
    assert abs(sum(x["mac_share"] for x in layers.values()) - 1) < 1e-9
    assert approx["approximation"]["approximate_mac_share"] == pytest.approx(1.0)
    functional = sum(x["macs"] for n, x in layers.items() if "#" in n)
    assert functional > 0.2 * approx["approximation"]["macs"]
    assert approx["top1"] != float_run["top1"] or approx["loss"] != float_run["loss"]
    (reference,) = _runs(capsys, checkpoint, "--backend", "reference", "--no-float")
    assert (reference["top1"], reference["loss"]) == (approx["top1"], approx["loss"])


def test_text_report_lists_functional_ops_with_their_share(capsys, checkpoint):
    from cli_support import run_cli

    code, out, _ = run_cli(
        capsys,
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        "--model",
        f"{EXAMPLE}:make",
        "--multiplier",
        "drum:4",
        "-q",
    )
    assert code == 0
    assert "attn.matmul#1" in out and "of the MACs approximate" in out
