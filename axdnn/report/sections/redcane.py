"""Report section of `redcane` steps: accuracy against noise magnitude, one curve per operation,
the sweep table, the resilience ranking, routing against convolutions, and the chosen
multipliers with their confirmation and energy saving.

Record keys: `checkpoint`, `model`, `data`, `split`, `samples`, `repeats`, `relative_to`,
`budget` (fraction), `baseline_accuracy`, `sweeps` [{operation, sites, macs, points [{magnitude,
mean, accuracy, low, high, drop}], tolerated_magnitude, tolerated_mean, score, score_low,
score_high}], `ranking` [{operation, rank, tolerated_magnitude, score, score_low, score_high}],
`groups` {first, second, first_score, second_score, first_more_resilient} or null, `choices`
[{operation, multiplier, noise_magnitude, noise_mean, relative_cost, macs}], `confirmation`
{accuracy, drop, within_budget, rounds, unconfirmed_operations}, `energy` {saving, rule}."""

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


def _sweeps(record: dict) -> list[dict]:
    return [s for s in record.get("sweeps") or [] if isinstance(s, dict)]


def _magnitude_points(sweep: dict) -> list[dict]:
    points = [p for p in sweep.get("points") or [] if isinstance(p, dict)]
    return sorted(
        (p for p in points if p.get("mean") == 0 and (p.get("magnitude") or 0) > 0),
        key=lambda p: p["magnitude"],
    )


def _curves(record: dict) -> str:
    sweeps = _sweeps(record)
    if not sweeps:
        return note("no operation was swept")
    fig = new_figure(6.8, 3.6)
    ax = fig.add_subplot()
    for s in sweeps:
        pts = _magnitude_points(s)
        if not pts:
            continue
        xs = [p["magnitude"] for p in pts]
        ax.plot(xs, [100 * p["accuracy"] for p in pts], "o-", label=plain(s.get("operation")))
        ax.fill_between(
            xs, [100 * p["low"] for p in pts], [100 * p["high"] for p in pts], alpha=0.12
        )
    base = 100 * float(record.get("baseline_accuracy") or 0)
    ax.axhline(base, color="black", linestyle=":", linewidth=1)
    ax.axhline(base - 100 * float(record.get("budget") or 0), color="gray", linewidth=0.8)
    ax.set(
        xscale="log",
        xlabel=f"noise magnitude NM (x the output's {plain(record.get('relative_to'))})",
        ylabel="top-1 (%)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    rows = [
        [s.get("operation"), fmt(p.get("magnitude")), fmt(p.get("mean")), pct(p.get("accuracy")),
         f"{pct(p.get('low'))} - {pct(p.get('high'))}", fmt(100 * (p.get("drop") or 0), 3)]
        for s in sweeps
        for p in s.get("points") or []
    ]  # fmt: skip
    numbers = table(
        ["operation", "NM", "NA", "accuracy (%)", "95% interval (%)", "drop (points)"], rows
    )
    caption = (
        "Accuracy with Gaussian noise added to every output of one operation (all its routing "
        "iterations), with Wilson 95% intervals; dotted: no noise, grey: the budget."
    )
    return report_figure(fig, caption, numbers, wide=True)


def _ranking(record: dict) -> str:
    rows = [
        [r.get("rank"), r.get("operation"), fmt(r.get("tolerated_magnitude")),
         fmt(r.get("tolerated_mean")), fmt(100 * (r.get("score") or 0), 3),
         f"{fmt(100 * (r.get('score_low') or 0), 3)} - {fmt(100 * (r.get('score_high') or 0), 3)}"]
        for r in record.get("ranking") or []
    ]  # fmt: skip
    if not rows:
        return note("no ranking")
    return table(
        ["rank", "operation", "tolerated NM", "tolerated NA", "mean drop (points)", "95% CI"],
        rows,
    )


def _choices(record: dict) -> str:
    rows = [
        [c.get("operation"), c.get("multiplier") or "exact", c.get("macs"),
         fmt(c.get("noise_magnitude")), fmt(c.get("noise_mean")), fmt(c.get("relative_cost"))]
        for c in record.get("choices") or []
    ]  # fmt: skip
    if not rows:
        return note("no multiplier was chosen (no candidates given)")
    return table(
        ["operation", "multiplier", "MACs per sample", "noise NM", "noise NA", "relative cost"],
        rows,
    )


@register_section("redcane")
def render(step: dict, context: ReportContext) -> Section:
    r = step["record"]
    conf, energy, groups = r.get("confirmation") or {}, r.get("energy") or {}, r.get("groups")
    verdict = "n/a"
    if groups:
        verdict = "yes" if groups.get("first_more_resilient") else "no"
        verdict += (
            f" (mean drop {fmt(100 * groups.get('first_score', 0), 3)} vs "
            f"{fmt(100 * groups.get('second_score', 0), 3)} points)"
        )
    pairs = [
        ("checkpoint", r.get("checkpoint")),
        ("model / data", f"{r.get('model')} / {r.get('data')} ({r.get('split')})"),
        ("samples x repeats", f"{r.get('samples')} x {r.get('repeats')}"),
        ("baseline accuracy (%)", pct(r.get("baseline_accuracy"))),
        ("budget (points)", fmt(100 * float(r.get("budget") or 0), 3)),
        ("routing more resilient than convolutions", verdict),
        ("confirmed accuracy (%)", pct(conf.get("accuracy"))),
        ("confirmed drop (points)", fmt(100 * (conf.get("drop") or 0), 3) if conf else "n/a"),
        ("unconfirmed operations", ", ".join(conf.get("unconfirmed_operations") or []) or "none"),
        ("compute energy saving (%)", pct(energy.get("saving")) if energy else "n/a"),
        ("cost rule", energy.get("rule", "n/a")),
    ]
    parts = [
        kv_table(pairs),
        "<h3>accuracy against noise magnitude</h3>",
        _curves(r),
        "<h3>resilience ranking</h3>",
        _ranking(r),
        "<h3>chosen multipliers</h3>",
        _choices(r),
    ]
    summary = (
        f"energy saving {pct(energy.get('saving'))}% at drop "
        f"{fmt(100 * (conf.get('drop') or 0), 3)} points"
        if conf and energy
        else f"{len(r.get('ranking') or [])} operations ranked"
    )
    return Section(step["name"], "".join(parts), summary)
