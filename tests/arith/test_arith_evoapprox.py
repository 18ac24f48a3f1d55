"""Acceptance: EvoApprox 8-bit unsigned tables reproduce the library's published MAE%, WCE%,
MRE% and EP% to the rounding shown in published_metrics.csv."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from axdnn.arith import get_multiplier

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "evoapprox8u"

pytestmark = pytest.mark.skipif(
    not (DATA / "published_metrics.csv").is_file(), reason="shared EvoApprox data not present"
)


def _rows() -> list[dict[str, str]]:
    if not (DATA / "published_metrics.csv").is_file():
        return []
    with open(DATA / "published_metrics.csv", newline="") as fh:
        return [r for r in csv.DictReader(fh) if (DATA / f"{r['name']}.bin").is_file()]


def _matches_published(value: float, published: str) -> bool:
    """True when `value` rounds to `published` at the number of decimals it shows."""
    decimals = max(-Decimal(published).as_tuple().exponent, 0)
    return abs(value - float(published)) <= 0.5 * 10.0**-decimals + 1e-12


def test_every_published_table_is_checked():
    rows = _rows()
    assert len(rows) >= 20
    assert "mul8u_1JFF" in {r["name"] for r in rows}


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["name"])
def test_published_metrics_reproduced(row):
    m = get_multiplier(f"lut:{DATA / (row['name'] + '.bin')}")
    assert (m.a_bits, m.b_bits, m.a_signed, m.b_signed) == (8, 8, False, False)
    met = m.metrics()
    assert _matches_published(met.mae_percent, row["mae_percent"]), (met.mae_percent, row)
    assert _matches_published(met.wce_percent, row["wce_percent"]), (met.wce_percent, row)
    assert _matches_published(met.mred_percent, row["mre_percent"]), (met.mred_percent, row)
    assert _matches_published(met.er_percent, row["ep_percent"]), (met.er_percent, row)


def test_exact_table_is_exact_multiplier():
    lut = get_multiplier(f"lut:{DATA / 'mul8u_1JFF.bin'}:uint16@u8")
    assert lut.content_hash == get_multiplier("exact@u8").content_hash
    assert lut == get_multiplier("exact")


def test_matching_helper_is_strict():
    assert _matches_published(0.00916, "0.0092")
    assert not _matches_published(0.00926, "0.0092")
    assert not _matches_published(8.016, "8.01")
    assert _matches_published(0.0, "0")
