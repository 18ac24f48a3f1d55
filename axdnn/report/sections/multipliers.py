"""Report section of `multipliers` steps: error metrics of each multiplier, its error heatmap
over operand values and its error histogram, drawn from a compact summary stored in the record.

Record keys: `multipliers`: [{`spec`, `name`, `a_bits`, `b_bits`, `a_signed`, `b_signed`,
`provenance`, `power_mw`, `area_um2`, `delay_ns`, `metrics` (er_percent, mae, mred_percent,
nmed_percent, wce, wcre_percent, mean_error, error_std, rank, pairs), `error_summary`
(see `multiplier_error_summary`; without it the heatmap and histogram are skipped, saying so)}].
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import TwoSlopeNorm

from axdnn.report.html import (
    ReportContext,
    Section,
    esc,
    fmt,
    kv_table,
    new_figure,
    note,
    plain,
    register_section,
    table,
)
from axdnn.report.html import figure as report_figure


def multiplier_error_summary(multiplier, blocks: int = 32, bins: int = 50) -> dict:
    """A compact, JSON-ready summary of a multiplier's error table (`approx - exact`) for the
    report: `heatmap`, the block means of the table with rows and columns in operand-value order
    (a down, b across; at most `blocks` x `blocks`), `a_range`/`b_range`, the operand values the
    heatmap spans, and `histogram` {`edges`, `counts`} of the error over all operand pairs (one
    bin per integer error when there are at most `bins` distinct values)."""
    av = multiplier.a_values().numpy()
    bv = multiplier.b_values().numpy()
    ra, rb = np.argsort(av, kind="stable"), np.argsort(bv, kind="stable")
    err = multiplier.error_table().numpy()[np.ix_(ra, rb)].astype(np.float64)
    row_groups = np.array_split(np.arange(err.shape[0]), min(blocks, err.shape[0]))
    col_groups = np.array_split(np.arange(err.shape[1]), min(blocks, err.shape[1]))
    heat = [[float(err[np.ix_(r, c)].mean()) for c in col_groups] for r in row_groups]
    lo, hi = int(err.min()), int(err.max())
    if hi - lo + 1 <= bins:
        edges = np.arange(lo, hi + 2, dtype=np.float64) - 0.5
    else:
        edges = np.linspace(lo - 0.5, hi + 0.5, bins + 1)
    counts, _ = np.histogram(err.ravel(), bins=edges)
    return {
        "heatmap": [[round(v, 4) for v in row] for row in heat],
        "a_range": [int(av.min()), int(av.max())],
        "b_range": [int(bv.min()), int(bv.max())],
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


_METRICS = [
    ("er_percent", "error rate (%)"),
    ("mae", "mean absolute error"),
    ("mae_percent", "MAE (% of max product)"),
    ("mred_percent", "MRED (%)"),
    ("nmed_percent", "NMED (%)"),
    ("wce", "worst-case error"),
    ("wce_percent", "WCE (% of max product)"),
    ("wcre_percent", "WCRE (%)"),
    ("mean_error", "bias (mean error)"),
    ("error_std", "error std"),
    ("rank", "rank of error table"),
    ("pairs", "operand pairs"),
]


def _operands(m: dict) -> str:
    a = f"{'s' if m.get('a_signed') else 'u'}{m.get('a_bits', '?')}"
    b = f"{'s' if m.get('b_signed') else 'u'}{m.get('b_bits', '?')}"
    return a if a == b else f"{a} x {b}"


def _heatmap(m: dict, summary: dict) -> str:
    grid = np.asarray(summary["heatmap"], dtype=float)
    if grid.ndim != 2 or grid.size == 0:
        return note("the error summary's heatmap is empty")
    a_lo, a_hi = summary.get("a_range") or (0, grid.shape[0] - 1)
    b_lo, b_hi = summary.get("b_range") or (0, grid.shape[1] - 1)
    fig = new_figure(5.4, 4.2)
    ax = fig.add_subplot()
    lo, hi = float(grid.min()), float(grid.max())
    bound = max(abs(lo), abs(hi), 1.0)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)
    im = ax.imshow(grid, cmap="RdBu_r", norm=norm, interpolation="nearest", aspect="auto",
                   extent=(b_lo - 0.5, b_hi + 0.5, a_hi + 0.5, a_lo - 0.5))  # fmt: skip
    fig.colorbar(im, ax=ax, label="mean error (approx - exact)")
    ax.set(xlabel="operand b", ylabel="operand a")
    ax.set_title(plain(f"{m.get('name', m.get('spec'))}: error over operand pairs"), fontsize=10)
    rows_a = _block_starts(a_lo, a_hi, grid.shape[0])
    cols_b = _block_starts(b_lo, b_hi, grid.shape[1])
    numbers = table(
        ["a \\ b", *cols_b],
        ([a, *row] for a, row in zip(rows_a, grid.tolist(), strict=True)),
        f"mean error per block ({grid.shape[0]} x {grid.shape[1]} blocks; row and column "
        "headers: first operand value of the block)",
        cls="grid",
        row_headers=True,
    )
    caption = (
        "Error heatmap: mean of approx - exact over blocks of operand pairs (a down, b across), "
        "blue below and red above the exact product."
    )
    return report_figure(fig, caption, numbers, wide=True)


def _block_starts(lo: int, hi: int, n: int) -> list[int]:
    values = np.arange(int(lo), int(hi) + 1)
    if len(values) < n:
        return list(range(n))
    return [int(g[0]) for g in np.array_split(values, n)]


def _histogram(m: dict, summary: dict) -> str:
    hist = summary["histogram"]
    edges = np.asarray(hist.get("edges") or [], dtype=float)
    counts = np.asarray(hist.get("counts") or [], dtype=float)
    if len(edges) != len(counts) + 1 or not len(counts):
        return note("the error summary's histogram is malformed (needs len(edges) = len(counts)+1)")
    fig = new_figure(5.6, 3.4)
    ax = fig.add_subplot()
    ax.stairs(counts, edges, fill=True, color="tab:blue", alpha=0.85)
    if counts.max() > 0 and counts[counts > 0].min() * 50 < counts.max():
        ax.set_yscale("log")
    mean = (m.get("metrics") or {}).get("mean_error")
    if isinstance(mean, int | float):
        ax.axvline(mean, color="tab:red", linestyle="--", label=f"mean {mean:.3g}")
        ax.legend(fontsize=7)
    ax.set(xlabel="error (approx - exact)", ylabel="operand pairs")
    ax.set_title(plain(f"{m.get('name', m.get('spec'))}: error distribution"), fontsize=10)
    rows = [[fmt(edges[i], 6), fmt(edges[i + 1], 6), int(c)] for i, c in enumerate(counts)]
    numbers = table(["from", "to", "pairs"], rows)
    return report_figure(fig, "Histogram of the error over all operand pairs.", numbers)


@register_section("multipliers")
def render(step: dict, context: ReportContext) -> Section:
    shown = [m for m in step["record"].get("multipliers") or [] if isinstance(m, dict)]
    if not shown:
        return Section(step["name"], note("this step characterised no multipliers"))
    headers = ["spec", "operands", *[label for _, label in _METRICS]]
    rows = [
        [m.get("spec"), _operands(m), *[(m.get("metrics") or {}).get(k) for k, _ in _METRICS]]
        for m in shown
    ]
    parts = [table(headers, rows, "error metrics (uniform operands)", row_headers=True)]
    for m in shown:
        spec = m.get("spec") or m.get("name") or "?"
        parts.append(f"<h3>{esc(spec)}</h3>")
        prov = m.get("provenance") or {}
        params = prov.get("params") or {}
        pairs = [
            ("name", m.get("name")),
            ("operands", _operands(m)),
            ("model", prov.get("model")),
            ("parameters", ", ".join(f"{k}={v}" for k, v in params.items()) or None),
            ("source", prov.get("source") or prov.get("path")),
            ("content hash", str(m.get("content_hash", ""))[:16] or None),
            ("power (mW)", m.get("power_mw")),
            ("area (µm²)", m.get("area_um2")),
            ("delay (ns)", m.get("delay_ns")),
        ]
        parts.append(kv_table([(k, v) for k, v in pairs if v is not None]))
        summary = m.get("error_summary")
        if isinstance(summary, dict) and "heatmap" in summary and "histogram" in summary:
            parts += [_heatmap(m, summary), _histogram(m, summary)]
        else:
            parts.append(
                note(
                    "No heatmap or histogram: this record carries no error_summary (the report "
                    "draws from records only and does not rebuild the multiplier)."
                )
            )
    summary = ", ".join(
        f"{m.get('spec')} MRED {fmt((m.get('metrics') or {}).get('mred_percent'), 3)} %"
        for m in shown
    )
    return Section(step["name"], "".join(parts), summary)
