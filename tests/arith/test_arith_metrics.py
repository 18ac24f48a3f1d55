"""Error metrics against a slow per-pair reference on random tables."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.arith import Multiplier, get_multiplier


def _slow_metrics(m: Multiplier) -> dict[str, float]:
    errs, rels, exacts = [], [], []
    for ia, a in enumerate(m.a_values().tolist()):
        for ib, b in enumerate(m.b_values().tolist()):
            e = int(m.table[ia, ib]) - a * b
            errs.append(e)
            exacts.append(abs(a * b))
            if a * b != 0:
                rels.append(abs(e) / abs(a * b))
    n = len(errs)
    mean = sum(errs) / n
    mae = sum(abs(e) for e in errs) / n
    wce = max(abs(e) for e in errs)
    return {
        "er_percent": 100 * sum(e != 0 for e in errs) / n,
        "mae": mae,
        "mae_percent": 100 * mae / 2 ** (m.a_bits + m.b_bits),
        "mred_percent": 100 * sum(rels) / len(rels),
        "nmed_percent": 100 * mae / max(exacts),
        "wce": wce,
        "wce_percent": 100 * wce / 2 ** (m.a_bits + m.b_bits),
        "wcre_percent": 100 * max(rels),
        "mean_error": mean,
        "error_std": (sum((e - mean) ** 2 for e in errs) / n) ** 0.5,
        "pairs": n,
    }


@settings(max_examples=25, deadline=None)
@given(
    st.integers(2, 4), st.integers(2, 4), st.booleans(), st.booleans(), st.integers(0, 2**32 - 1)
)
def test_metrics_match_slow_reference(na, nb, sa, sb, seed):
    rng = np.random.default_rng(seed)
    base = get_multiplier(f"exact@{'s' if sa else 'u'}{na}x{'s' if sb else 'u'}{nb}")
    noise = rng.integers(-3, 4, size=base.table.shape) * (rng.random(base.table.shape) < 0.5)
    m = Multiplier.from_array(base.table.numpy() + noise, na, nb, sa, sb)
    got = m.metrics().to_dict()
    for key, value in _slow_metrics(m).items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    assert got["rank"] == np.linalg.matrix_rank(noise.astype(np.float64))


def test_rank_of_structured_errors():
    base = get_multiplier("exact@u4")
    u = np.arange(16)
    rank1 = Multiplier.from_array(base.table.numpy() + np.outer(u % 3, u % 5), 4, 4)
    assert rank1.metrics().rank == 1
    assert base.metrics().rank == 0
