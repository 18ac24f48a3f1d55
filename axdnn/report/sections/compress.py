"""Report sections of `prune` and `share` steps: MACs and parameters before and after, filters
per layer, and for sharing the search's accuracy against compression ratio and the k per layer.

Record keys (prune): `model`, `checkpoint`, `accuracy_before`, `accuracy_after`,
`reload_identical`, `folded_batchnorm` (count), `params_saved`, `pruning` {criterion, ratio,
global_pruning, steps, macs_before, macs_after, macs_ratio, params_before, params_after,
params_ratio, layers [{name, before, after}]}.
Record keys (share): `model`, `checkpoint`, `accuracy_before`, `accuracy_after`, `drop`, `ks`,
`cost` {compression_ratio, dense_weight_bits, shared_weight_bits, codebook_lookups, layers},
`search` {baseline_accuracy, budget, bits, trials [{number, compression_ratio, accuracy, drop,
feasible}], pareto, layers, sensitivity}."""

from __future__ import annotations

from axdnn.report.html import (
    ReportContext,
    Section,
    fmt,
    kv_table,
    new_figure,
    note,
    pct,
    register_section,
    table,
)
from axdnn.report.html import figure as report_figure


def _common(record: dict) -> list[tuple[str, object]]:
    return [
        ("model", record.get("model")),
        ("checkpoint written", record.get("checkpoint")),
        ("test top-1 before (%)", pct(record.get("accuracy_before"))),
        ("test top-1 after (%)", pct(record.get("accuracy_after"))),
    ]


@register_section("prune")
def render_prune(step: dict, context: ReportContext) -> Section:
    record = step["record"]
    p = record.get("pruning") or {}
    pairs = _common(record) + [
        ("criterion", p.get("criterion")),
        ("ratio", p.get("ratio")),
        ("global ranking", p.get("global_pruning")),
        ("steps", p.get("steps")),
        ("MACs before / after", f"{fmt(p.get('macs_before'))} / {fmt(p.get('macs_after'))}"),
        ("MACs ratio", p.get("macs_ratio")),
        ("params before / after", f"{fmt(p.get('params_before'))} / {fmt(p.get('params_after'))}"),
        ("params ratio", p.get("params_ratio")),
        ("reloads to identical outputs", record.get("reload_identical")),
        ("batch norms folded", record.get("folded_batchnorm", 0)),
        ("params saved", fmt(record.get("params_saved"))),
    ]
    parts = [kv_table(pairs, "pruning")]
    layers = [w for w in p.get("layers") or [] if isinstance(w, dict)]
    if layers:
        rows = [[w.get("name"), w.get("before"), w.get("after")] for w in layers]
        parts.append(table(["layer", "filters before", "filters after"], rows, "per layer",
                           row_headers=True))  # fmt: skip
    else:
        parts.append(note("the pruning record lists no layers"))
    summary = f"MACs x{fmt(p.get('macs_ratio'), 3)}, top-1 {pct(record.get('accuracy_after'))}%"
    return Section(step["name"], "".join(parts), summary)


def _trials_figure(search: dict) -> str:
    trials = [t for t in search.get("trials") or [] if isinstance(t, dict)]
    if not trials:
        return note("the search stored no trials")
    fig = new_figure(6.0, 3.4)
    ax = fig.subplots()
    for feasible, color, label in ((True, "tab:blue", "within budget"),
                                   (False, "tab:gray", "over budget")):  # fmt: skip
        pts = [t for t in trials if bool(t.get("feasible")) == feasible]
        ax.scatter([t.get("compression_ratio") for t in pts],
                   [100 * float(t.get("accuracy") or 0) for t in pts], s=12, color=color,
                   label=label)  # fmt: skip
    base = search.get("baseline_accuracy")
    if isinstance(base, int | float):
        ax.axhline(100 * base, color="black", linewidth=1, linestyle="--", label="unshared")
    ax.set_xlabel("compression ratio")
    ax.set_ylabel("validation top-1 (%)")
    ax.legend(fontsize=8)
    rows = [[t.get("number"), t.get("compression_ratio"), pct(t.get("accuracy")),
             pct(t.get("drop")), bool(t.get("feasible"))] for t in trials]  # fmt: skip
    numbers = table(["trial", "CR", "top-1 (%)", "drop (%)", "feasible"], rows, row_headers=True)
    caption = "Accuracy against compression ratio of every trial of the k-per-layer search."
    return report_figure(fig, caption, numbers)


@register_section("share")
def render_share(step: dict, context: ReportContext) -> Section:
    record = step["record"]
    cost, search = record.get("cost") or {}, record.get("search") or {}
    pairs = _common(record) + [
        ("accuracy budget (%)", pct(search.get("budget"))),
        ("weight bits", search.get("bits")),
        ("compression ratio", cost.get("compression_ratio")),
        (
            "weight memory (bits)",
            f"{fmt(cost.get('dense_weight_bits'))} -> {fmt(cost.get('shared_weight_bits'))}",
        ),  # fmt: skip
        ("codebook lookups per inference", cost.get("codebook_lookups")),
        ("trials", len(search.get("trials") or [])),
        ("codebook fine-tuning", "yes" if record.get("codebook_finetune") else "no"),
    ]
    parts = [kv_table(pairs, "weight sharing"), _trials_figure(search)]
    ks = record.get("ks") or {}
    weights, sens = search.get("layers") or {}, search.get("sensitivity") or {}
    by_name = {r.get("name"): r for r in cost.get("layers") or [] if isinstance(r, dict)}
    rows = [[n, k, sens.get(n), weights.get(n), (by_name.get(n) or {}).get("memory_bits")]
            for n, k in ks.items()]  # fmt: skip
    parts.append(table(["layer", "k", "k alone (sensitivity)", "weights", "memory (bits)"],
                       rows, "per-layer k", row_headers=True))  # fmt: skip
    summary = f"CR {fmt(cost.get('compression_ratio'), 3)}, drop {pct(record.get('drop'))} pt"
    return Section(step["name"], "".join(parts), summary)
