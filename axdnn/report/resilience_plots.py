"""Resilience plots from analysis records (plain dicts, never live objects): sensitivity curves
(accuracy against error magnitude per site) and per-filter significance bars. Agg canvas only."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, format="png", dpi=100)
    return out


def plot_sensitivity(record: dict, path: str | os.PathLike[str]) -> Path:
    """PNG of accuracy vs error magnitude, one line per site with its Wilson band."""
    fig = Figure(figsize=(7.0, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for site, points in record["curves"].items():
        m = np.array([p["magnitude"] for p in points])
        acc = np.array([p["accuracy"] for p in points])
        ax.plot(m, acc, marker="o", label=site)
        ax.fill_between(m, [p["low"] for p in points], [p["high"] for p in points], alpha=0.15)
    ax.axhline(
        record["baseline_accuracy"], color="black", linestyle="--", linewidth=1, label="fault-free"
    )
    ax.set_xscale("log")
    ax.set_xlabel(f"error magnitude m ({record['template']})")
    ax.set_ylabel("top-1 accuracy")
    ax.set_title("Per-site sensitivity")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _save(fig, path)


def plot_filter_significance(record: dict, path: str | os.PathLike[str]) -> Path:
    """PNG with one panel per layer: accuracy drop of each filter, significant ones highlighted."""
    layers = list(dict.fromkeys(f["layer"] for f in record["filters"]))
    fig = Figure(figsize=(7.0, 2.2 * max(1, len(layers))))
    for i, layer in enumerate(layers):
        ax = fig.add_subplot(len(layers), 1, i + 1)
        scores = [f for f in record["filters"] if f["layer"] == layer]
        drops = [f["drop"] for f in scores]
        colors = ["tab:red" if f["significant"] else "tab:gray" for f in scores]
        ax.bar([f["filter"] for f in scores], drops, color=colors)
        ax.axhline(record["threshold"], color="black", linestyle="--", linewidth=1)
        ax.set_ylabel("acc. drop")
        ax.set_title(
            f"{layer}: {sum(f['significant'] for f in scores)}/{len(scores)} significant",
            fontsize=9,
        )
    fig.axes[-1].set_xlabel("filter")
    fig.tight_layout()
    return _save(fig, path)
