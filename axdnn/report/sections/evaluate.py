"""Report section of `evaluate` steps: accuracy of every run (float and each multiplier or plan),
accuracy against energy, per-class accuracy and which layers stayed exact and why.

Record keys: `runs`: [{`label` (else the plan's multiplier), `top1`, `top5`, `loss`, `samples`,
`float_top1` (approximate runs), `per_class_accuracy`, `confusion`, `plan`, `approximation`
(`layers`: [{name, kind, status, multiplier, weight_format, act_format, reason}]), `energy`
(`total_pj`, `compute_pj`, `memory_pj`; optional)}]. Energy falls back to a `cost` step of the
same checkpoint for float runs; per-layer MACs (for MAC shares) come from a `cost` step."""

from __future__ import annotations

from axdnn.report.html import (
    ReportContext,
    Section,
    esc,
    fmt,
    new_figure,
    note,
    pct,
    plain,
    register_section,
    table,
)
from axdnn.report.html import figure as report_figure
from axdnn.report.sections.train import class_table


def run_label(run: dict, index: int) -> str:
    """A run's name: its label, else its uniform multiplier, else float or `run N`."""
    if run.get("label"):
        return str(run["label"])
    plan = run.get("plan") or {}
    specs = {str(v.get("multiplier")) for v in (plan.get("layers") or {}).values() if v}
    if len(specs) == 1:
        return specs.pop()
    return "float" if not plan else f"run {index + 1}"


def _hardware(layer: dict) -> str:
    if layer.get("status") != "approximate":
        return f"exact: {layer.get('reason') or 'no reason recorded'}"
    if layer.get("multiplier"):
        return str(layer["multiplier"])
    weights, inputs = layer.get("weight_format") or "float", layer.get("act_format") or "float"
    return f"weights {weights}, inputs {inputs}"


def _cost_step(context: ReportContext, checkpoint: str | None) -> dict | None:
    """The latest cost step (of this checkpoint when the cost record says which)."""
    costs = context.steps_of_kind("cost")
    for step in reversed(costs):
        ck = (step.get("config") or {}).get("checkpoint")
        if checkpoint is None or ck in (None, checkpoint):
            return step
    return costs[-1] if costs else None


def _energy(run: dict, cost: dict | None) -> tuple[float | None, str]:
    energy = run.get("energy") or {}
    if isinstance(energy.get("total_pj"), int | float):
        return float(energy["total_pj"]), "evaluate record"
    if cost is not None and not run.get("plan"):
        total = ((cost.get("record") or {}).get("energy") or {}).get("total_pj")
        if isinstance(total, int | float):
            return float(total), f"cost step {cost.get('name')}"
    return None, ""


def _pareto(points: list[tuple[float, float]]) -> list[bool]:
    """True for points no other point beats on both energy (lower) and accuracy (higher)."""
    flags = []
    for e, a in points:
        dominated = any(
            (e2 <= e and a2 >= a) and (e2 < e or a2 > a) for e2, a2 in points if (e2, a2) != (e, a)
        )
        flags.append(not dominated)
    return flags


def _scatter(labels, runs, cost, context) -> str:
    energies = [_energy(run, cost) for run in runs]
    have = [(i, e) for i, (e, _) in enumerate(energies) if e is not None]
    if not have:
        why = (
            "no cost step ran in this experiment"
            if cost is None
            else f"the cost step {cost.get('name')!r} gives the float model's energy only"
        )
        return note(
            "Accuracy against energy is not drawn: the evaluate records carry no per-run energy "
            f"and {why}. Add a cost step, or evaluate with a runner that records energy."
        )
    points = [(e / 1000.0, 100 * float(runs[i].get("top1", float("nan")))) for i, e in have]
    front = _pareto(points)
    fig = new_figure(6.0, 3.8)
    ax = fig.add_subplot()
    names: dict[tuple[float, float], list[str]] = {}  # runs that land on the same point
    for (x, y), i, best in zip(points, (i for i, _ in have), front, strict=True):
        ax.scatter([x], [y], s=46, color="tab:red" if best else "tab:blue", zorder=3)
        names.setdefault((round(x, 6), round(y, 6)), []).append(labels[i])
    for (x, y), group in names.items():
        text = plain(", ".join(group))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ordered = sorted((p for p, best in zip(points, front, strict=True) if best))
    if len(ordered) > 1:
        ax.plot(*zip(*ordered, strict=True), color="tab:red", alpha=0.5, linewidth=1, zorder=2)
    ax.margins(0.15)
    ax.set(xlabel="energy per inference (nJ)", ylabel="top-1 (%)")
    ax.set_title("accuracy against energy (red: Pareto-optimal)", fontsize=10)
    ax.grid(alpha=0.3)
    rows = [
        [labels[i], pct(runs[i].get("top1")), fmt(e / 1000.0), energies[i][1], best]
        for (i, e), best in zip(have, front, strict=True)
    ]
    numbers = table(["run", "top-1 (%)", "energy (nJ)", "energy from", "Pareto-optimal"], rows)
    missing = [labels[i] for i, (e, _) in enumerate(energies) if e is None]
    extra = note(f"no energy recorded for: {', '.join(missing)}") if missing else ""
    caption = (
        "Top-1 accuracy against energy per inference from the cost model; Pareto-optimal runs "
        "(no other run is both cheaper and more accurate) in red."
    )
    return report_figure(fig, caption, numbers) + extra


def _per_class(labels, runs, names) -> str:
    series = [
        (labels[i], r["per_class_accuracy"])
        for i, r in enumerate(runs)
        if r.get("per_class_accuracy")
    ]
    if not series:
        return ""
    n = max(len(acc) for _, acc in series)
    names = list(names or range(n))
    fig = new_figure(6.4, 3.2)
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    for k, (label, acc) in enumerate(series):
        xs = [c + (k - (len(series) - 1) / 2) * width for c in range(len(acc))]
        ax.bar(xs, [100 * a for a in acc], width=width, label=plain(label))
    ax.set_xticks(range(n), [plain(c) for c in names[:n]])
    lows = [min(acc) for _, acc in series]
    ax.set_ylim(max(0.0, 100 * min(lows) - 10), 100.5)
    ax.set(xlabel="class", ylabel="accuracy (%)")
    ax.legend(fontsize=7, ncols=min(4, len(series)), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.grid(alpha=0.3, axis="y")
    rows = [
        [
            names[c] if c < len(names) else c,
            *[pct(acc[c]) if c < len(acc) else None for _, acc in series],
        ]
        for c in range(n)
    ]
    numbers = table(["class", *[f"{label} (%)" for label, _ in series]], rows, row_headers=True)
    return report_figure(fig, "Per-class accuracy of every run.", numbers)


def _layers(labels, runs, cost) -> str:
    with_report = [
        (labels[i], r) for i, r in enumerate(runs) if (r.get("approximation") or {}).get("layers")
    ]
    if not with_report:
        return ""
    macs = {}
    if cost is not None:
        layers = (((cost.get("record") or {}).get("cost") or {}).get("layers")) or []
        macs = {str(layer.get("name")): layer.get("macs") for layer in layers}
    for _, run in with_report:  # the runs' own counts include functional ops under the plan
        for layer in run["approximation"]["layers"]:
            if isinstance(layer.get("macs"), int | float):
                macs[str(layer.get("name"))] = layer["macs"]
    total = sum(v for v in macs.values() if isinstance(v, int | float)) or None
    names = []
    for _, run in with_report:
        for layer in run["approximation"]["layers"]:
            if layer.get("name") not in names:
                names.append(layer.get("name"))
    rows = []
    for name in names:
        cells = []
        for _, run in with_report:
            found = [x for x in run["approximation"]["layers"] if x.get("name") == name]
            cells.append(_hardware(found[0]) if found else "–")
        share = (
            pct(macs[name] / total) if total and isinstance(macs.get(name), int | float) else None
        )
        rows.append([name, share, *cells])
    parts = [
        table(
            ["layer", "MACs (%)", *labels_of(with_report)],
            rows,
            "hardware of every layer",
            row_headers=True,
        )
    ]
    for label, run in with_report:
        exact = [x for x in run["approximation"]["layers"] if x.get("status") != "approximate"]
        if exact:
            share = sum(macs.get(str(x.get("name")), 0) or 0 for x in exact)
            share_text = f", {pct(share / total)} % of the MACs" if total else ""
            items = "; ".join(
                f"{x.get('name')} ({x.get('reason') or 'no reason recorded'})" for x in exact
            )
            parts.append(
                note(f"{label}: {len(exact)} layer(s) stayed exact{share_text}: {items}", "warn")
            )
    if not macs:
        parts.append(note("MAC shares need the input shape or a cost step; neither was there."))
    return "".join(parts)


def labels_of(pairs) -> list[str]:
    return [label for label, _ in pairs]


@register_section("evaluate")
def render(step: dict, context: ReportContext) -> Section:
    record = step["record"]
    runs = [r for r in record.get("runs") or [] if isinstance(r, dict)]
    if not runs:
        return Section(step["name"], note("this evaluate step recorded no runs"))
    labels = [run_label(r, i) for i, r in enumerate(runs)]
    cost = _cost_step(context, record.get("checkpoint"))
    float_energy = None
    for run in runs:
        if not run.get("plan"):
            float_energy = _energy(run, cost)[0]
            break
    rows = []
    for label, run in zip(labels, runs, strict=True):
        ref = run.get("float_top1")
        drop = 100 * (ref - run["top1"]) if isinstance(ref, int | float) and "top1" in run else None
        energy = _energy(run, cost)[0]
        saving = (
            pct(1 - energy / float_energy)
            if energy is not None and float_energy and run.get("plan")
            else None
        )
        layers = (run.get("approximation") or {}).get("layers") or []
        exact = sum(1 for x in layers if x.get("status") != "approximate")
        rows.append([
            label,
            pct(run.get("top1")),
            pct(ref) if ref is not None else None,
            fmt(drop, 3) if drop is not None else None,
            pct(run.get("top5")),
            run.get("loss"),
            run.get("samples"),
            fmt(energy / 1000.0) if energy is not None else None,
            saving,
            f"{exact}/{len(layers)}" if layers else None,
        ])  # fmt: skip
    headers = [
        "run", "top-1 (%)", "float top-1 (%)", "drop (points)", "top-5 (%)", "loss", "samples",
        "energy (nJ)", "energy saved (%)", "exact layers",
    ]  # fmt: skip
    split = runs[0].get("split")
    data = runs[0].get("data")
    from_cost = cost is not None and any(
        _energy(run, cost)[1].startswith("cost step") for run in runs
    )
    intro = (
        f"<p>{esc(runs[0].get('model', 'model'))} on {esc(data)} ({esc(split)} split), "
        f"checkpoint <code>{esc(record.get('checkpoint', runs[0].get('checkpoint', '?')))}</code>."
        + (f" Energy of the float run from {context.link(cost['name'])}." if from_cost else "")
        + "</p>"
    )
    unpriced = sorted({m for r in runs for m in (r.get("energy") or {}).get("priced_as_exact", [])})
    if unpriced:
        intro += note(
            "No published power for " + ", ".join(unpriced) + ": the cost model prices their "
            "products as the exact multiplier of the same width, so their energy equals exact's."
        )
    parts = [intro, table(headers, rows, "accuracy of every run")]
    parts += ["<h3>accuracy against energy</h3>", _scatter(labels, runs, cost, context)]
    parts += ["<h3>per class</h3>", _per_class(labels, runs, None)]
    layers_html = _layers(labels, runs, cost)
    if layers_html:
        parts += ["<h3>layers</h3>", layers_html]
    confusions = [
        f"<details><summary>confusion matrix of {esc(label)}</summary>"
        + class_table(run.get("per_class_accuracy"), run.get("confusion"), None)
        + "</details>"
        for label, run in zip(labels, runs, strict=True)
        if run.get("confusion")
    ]
    parts += confusions
    summary = ", ".join(
        f"{label} {pct(r.get('top1'))} %" for label, r in zip(labels, runs, strict=True)
    )
    return Section(step["name"], "".join(parts), f"top-1: {summary}")
