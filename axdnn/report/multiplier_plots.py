"""Plots of a multiplier's error: heatmap over operand values and histogram of error values.

Uses matplotlib's object-oriented API with the Agg canvas (no pyplot, no global backend switch),
so it is safe in headless runs and threads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from axdnn.arith.multiplier import Multiplier


def _by_value(m: Multiplier) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Error table with rows/columns ordered by operand value (signed operands run -2**(n-1)..)."""
    av, bv = m.a_values().numpy(), m.b_values().numpy()
    ra, rb = np.argsort(av, kind="stable"), np.argsort(bv, kind="stable")
    err = m.error_table().numpy()[np.ix_(ra, rb)]
    return err, av[ra], bv[rb]


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, format="png", dpi=100)
    return out


def plot_error_heatmap(m: Multiplier, path: str | os.PathLike[str]) -> Path:
    """PNG heatmap of `approx - exact` over all operand pairs (a down, b across), diverging
    colours centred on zero."""
    err, av, bv = _by_value(m)
    fig = Figure(figsize=(6.0, 5.0))
    ax = fig.add_subplot()
    lo, hi = float(err.min()), float(err.max())
    norm = TwoSlopeNorm(vcenter=0.0, vmin=min(lo, -1.0), vmax=max(hi, 1.0))
    extent = (bv[0] - 0.5, bv[-1] + 0.5, av[-1] + 0.5, av[0] - 0.5)
    im = ax.imshow(err, cmap="RdBu_r", norm=norm, extent=extent, interpolation="nearest",
                   aspect="auto")  # fmt: skip
    fig.colorbar(im, ax=ax, label="error (approx - exact)")
    ax.set_xlabel(f"operand b ({'s' if m.b_signed else 'u'}{m.b_bits})")
    ax.set_ylabel(f"operand a ({'s' if m.a_signed else 'u'}{m.a_bits})")
    ax.set_title(f"{m.name}: error over all operand pairs")
    fig.tight_layout()
    return _save(fig, path)


def plot_error_histogram(m: Multiplier, path: str | os.PathLike[str], bins: int = 101) -> Path:
    """PNG histogram of the error over all (uniformly weighted) operand pairs, log-scaled counts,
    with the mean error and MAE in the legend."""
    err = m.error_table().numpy().ravel()
    met = m.metrics()
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    lo, hi = int(err.min()), int(err.max())
    if hi - lo + 1 <= bins:  # one bar per integer error value
        edges = np.arange(lo, hi + 2) - 0.5
    else:
        edges = np.linspace(lo - 0.5, hi + 0.5, bins + 1)
    ax.hist(err, bins=edges, color="tab:blue", log=True)
    ax.axvline(met.mean_error, color="tab:red", linestyle="--",
               label=f"mean {met.mean_error:.3g}, MAE {met.mae:.3g}")  # fmt: skip
    ax.set_xlabel("error (approx - exact)")
    ax.set_ylabel("operand pairs")
    ax.set_title(f"{m.name}: error distribution ({met.pairs} pairs)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return _save(fig, path)
