"""Report section of `significance` steps: per-filter significance of every layer and the
comparison of significance-driven with L1-norm filter pruning.

Record keys: `checkpoint`, `error_model`, `threshold`, `baseline_accuracy`, `samples`,
`significance_split`, `pruning_split`, `filters` [{layer, filter, accuracy, low, high, drop, l1,
significant}], `pruning` [{fraction, pruned_filters, significance_accuracy, l1_accuracy,
advantage}]."""

from __future__ import annotations

from axdnn.report.html import (
    ReportContext,
    Section,
    fmt,
    kv_table,
    new_figure,
    note,
    pct,
    plain,
    register_section,
    table,
)
from axdnn.report.html import figure as report_figure


def _filters(record: dict) -> str:
    filters = [f for f in record.get("filters") or [] if isinstance(f, dict)]
    if not filters:
        return note("no filters were scored")
    layers = list(dict.fromkeys(str(f.get("layer")) for f in filters))
    threshold = record.get("threshold")
    fig = new_figure(6.6, 1.0 + 1.6 * len(layers))
    axes = fig.subplots(len(layers), 1, squeeze=False)[:, 0]
    for ax, layer in zip(axes, layers, strict=True):
        scores = [f for f in filters if str(f.get("layer")) == layer]
        drops = [100 * float(f.get("drop", 0)) for f in scores]
        colors = ["tab:red" if f.get("significant") else "tab:gray" for f in scores]
        ax.bar([f.get("filter") for f in scores], drops, color=colors)
        if isinstance(threshold, int | float):
            ax.axhline(100 * threshold, color="black", linestyle="--", linewidth=1)
        count = sum(bool(f.get("significant")) for f in scores)
        ax.set_title(plain(f"{layer}: {count}/{len(scores)} significant"), fontsize=9)
        ax.set_ylabel("drop (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("filter")
    rows = [
        [f.get("layer"), f.get("filter"), pct(f.get("drop")), pct(f.get("accuracy")),
         pct(f.get("low")), pct(f.get("high")), f.get("l1"), bool(f.get("significant"))]
        for f in filters
    ]  # fmt: skip
    numbers = table(
        ["layer", "filter", "drop (%)", "accuracy (%)", "low (%)", "high (%)", "L1 norm",
         "significant"], rows, row_headers=True,
    )  # fmt: skip
    caption = (
        "Accuracy drop when one filter's output is corrupted, per filter; red filters are "
        "significant (drop above the dashed threshold)."
    )
    return report_figure(fig, caption, numbers, wide=True)


def _pruning(record: dict) -> str:
    rows_in = [p for p in record.get("pruning") or [] if isinstance(p, dict)]
    if not rows_in:
        return note("no pruning comparison was run")
    fig = new_figure(5.6, 3.4)
    ax = fig.add_subplot()
    xs = [100 * float(p.get("fraction", 0)) for p in rows_in]
    ax.plot(xs, [100 * float(p.get("significance_accuracy", 0)) for p in rows_in], "o-",
            label="least significant first")  # fmt: skip
    ax.plot(xs, [100 * float(p.get("l1_accuracy", 0)) for p in rows_in], "s--",
            label="smallest L1 norm first")  # fmt: skip
    base = record.get("baseline_accuracy")
    if isinstance(base, int | float):
        ax.axhline(100 * base, color="black", linestyle=":", linewidth=1, label="unpruned (val)")
    ax.set(xlabel="filters pruned (%)", ylabel="top-1 (%)", title="pruning: significance vs L1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    rows = [
        [pct(p.get("fraction")), p.get("pruned_filters"), pct(p.get("significance_accuracy")),
         pct(p.get("l1_accuracy")), fmt(100 * p["advantage"], 3) if isinstance(
             p.get("advantage"), int | float) else None]
        for p in rows_in
    ]  # fmt: skip
    numbers = table(
        ["pruned (%)", "filters", "significance (%)", "L1 (%)", "advantage (points)"], rows
    )
    caption = (
        "Accuracy after pruning the given share of filters, least significant first against "
        "smallest L1 norm first; a positive advantage favours significance."
    )
    return report_figure(fig, caption, numbers)


@register_section("significance")
def render(step: dict, context: ReportContext) -> Section:
    r = step["record"]
    filters = [f for f in r.get("filters") or [] if isinstance(f, dict)]
    pairs = [
        ("checkpoint", r.get("checkpoint")),
        ("data", r.get("data")),
        ("error model", r.get("error_model")),
        ("threshold (accuracy drop, %)", pct(r.get("threshold"))),
        ("fault-free accuracy (%)", pct(r.get("baseline_accuracy"))),
        ("samples", r.get("samples")),
        ("repeats", r.get("repeats")),
        ("significance on / pruning on", f"{r.get('significance_split', '?')} / "
         f"{r.get('pruning_split', '?')} split"),
    ]  # fmt: skip
    parts = [kv_table(pairs)]
    layers = list(dict.fromkeys(str(f.get("layer")) for f in filters))
    if layers:
        rows = []
        for layer in layers:
            scores = [f for f in filters if str(f.get("layer")) == layer]
            count = sum(bool(f.get("significant")) for f in scores)
            rows.append([layer, len(scores), count, pct(count / len(scores))])
        parts.append(
            table(["layer", "filters", "significant", "significant (%)"], rows, "per layer")
        )
    parts += ["<h3>per-filter significance</h3>", _filters(r)]
    parts += ["<h3>pruning comparison</h3>", _pruning(r)]
    count = sum(bool(f.get("significant")) for f in filters)
    return Section(step["name"], "".join(parts), f"{count}/{len(filters)} filters significant")
