"""Error metrics of an approximate multiplier over all operand pairs (uniform inputs).

Definitions, with E = approximate - exact over the 2**(n_a+n_b) operand pairs:

- ER (error rate, %): share of pairs with E != 0 (EvoApprox "EP").
- MAE: mean |E|. MAE% = MAE / 2**(n_a+n_b) * 100 and WCE% = WCE / 2**(n_a+n_b) * 100, the
  EvoApprox convention (Mrazek et al., "EvoApprox8b", DATE 2017; library README).
- MRED (%): mean of |E| / |exact| over the pairs with a nonzero exact product; this reproduces the
  published EvoApprox MRE figures (checked in tests/arith against the library's 8-bit tables).
- NMED (%): MAE / max|exact| * 100, the normalisation of Liang, Han & Lombardi, "New metrics for the
  reliability of approximate and probabilistic adders", IEEE TC 2013 (max|exact| = 255*255 for u8).
- WCE: max |E|. WCRE (%): max of |E| / |exact| over nonzero exact products.
- mean error (bias) and error std (population): mean and standard deviation of E.
- rank: numpy matrix_rank of the float64 error table (low rank permits fast exact kernels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from axdnn.arith.multiplier import Multiplier


@dataclass(frozen=True)
class ErrorMetrics:
    """Error metrics of one multiplier; percentages are in percent (0..100)."""

    er_percent: float
    mae: float
    mae_percent: float
    mred_percent: float
    nmed_percent: float
    wce: int
    wce_percent: float
    wcre_percent: float
    mean_error: float
    error_std: float
    rank: int
    pairs: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


def error_rank(err: np.ndarray) -> int:
    """numpy matrix_rank of the float64 error table. BLAS is held to one thread: a 256x256 SVD
    gains nothing from more, and threaded OpenBLAS stalls badly on a busy machine."""
    errf = np.asarray(err, dtype=np.float64)
    if not errf.any():
        return 0
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        return int(np.linalg.matrix_rank(errf))
    with threadpool_limits(limits=1, user_api="blas"):
        return int(np.linalg.matrix_rank(errf))


def compute_metrics(m: Multiplier) -> ErrorMetrics:
    """All metrics of `m` over every operand pair (see the module docstring for definitions)."""
    exact = m.exact_table().numpy()
    err = m.error_table().numpy()
    return metrics_from_tables(exact, err, m.a_bits + m.b_bits)


def metrics_from_tables(exact: np.ndarray, err: np.ndarray, total_bits: int) -> ErrorMetrics:
    """Metrics from an exact-product table and an error table of the same shape (int64)."""
    abs_err = np.abs(err)
    abs_exact = np.abs(exact)
    scale = float(1 << total_bits)
    nonzero = abs_exact != 0
    rel = abs_err[nonzero] / abs_exact[nonzero]
    max_exact = float(abs_exact.max())
    mae = float(abs_err.mean())
    wce = int(abs_err.max())
    errf = err.astype(np.float64)
    return ErrorMetrics(
        er_percent=float(np.count_nonzero(err)) / err.size * 100.0,
        mae=mae,
        mae_percent=mae / scale * 100.0,
        mred_percent=float(rel.mean()) * 100.0 if rel.size else 0.0,
        nmed_percent=mae / max_exact * 100.0 if max_exact else 0.0,
        wce=wce,
        wce_percent=wce / scale * 100.0,
        wcre_percent=float(rel.max()) * 100.0 if rel.size else 0.0,
        mean_error=float(errf.mean()),
        error_std=float(errf.std()),
        rank=error_rank(errf),
        pairs=int(err.size),
    )
