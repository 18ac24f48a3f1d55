"""Report section of `resilience` steps: per-site sensitivity curves with confidence bands, the
sensitivity ranking with its confidence intervals and rank stability, and the optional stored
fault campaign.

Record keys: `checkpoint`, `data`, `samples`, `sensitivity` (`template`, `baseline_accuracy`,
`repeats`, `curves` {site: [{magnitude, accuracy, low, high, drop}]}, `ranking` [{rank, site,
score, score_low, score_high, rank_low, rank_high}], `rank_stability` {kendall_tau_mean,
kendall_tau_p05, stable, bootstrap}, `notes`), optional `campaign` (`name`, `error_model`,
`trials`, `planned`, `status`, `critical_rate` / `accuracy_drop` {estimate, low, high,
confidence}, `golden_accuracy`, `faulty_accuracy`, `per_site` [{site, trials, critical,
critical_rate {...}}])."""

from __future__ import annotations

import numpy as np

from axdnn.report.html import (
    ReportContext,
    Section,
    esc,
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


def _ci_bars(labels, estimates, color, **axes):
    """Horizontal bars of fractions (as %) with their 95% intervals, first label on top;
    `estimates` holds (estimate, low, high), a missing bound standing at the estimate."""
    fig = new_figure(6.0, max(2.4, 0.8 + 0.35 * len(labels)))
    ax = fig.add_subplot()
    ys = list(range(len(labels)))

    def percent(value, fallback=None):
        value = fallback if value is None else value
        return 100 * float(value or 0)

    est = np.array([percent(e) for e, _, _ in estimates])
    low = np.array([percent(lo, e) for e, lo, _ in estimates])
    high = np.array([percent(hi, e) for e, _, hi in estimates])
    ax.barh(ys, est, color=color, alpha=0.75)
    ax.errorbar(est, ys, xerr=[est - low, high - est], fmt="none", ecolor="black", capsize=3)
    ax.set_yticks(ys, [plain(label) for label in labels], fontsize=8)
    ax.invert_yaxis()
    ax.set(**axes)
    ax.grid(alpha=0.3, axis="x")
    return fig


def _curves(s: dict) -> str:
    curves = {k: v for k, v in (s.get("curves") or {}).items() if v}
    if not curves:
        return note("the sweep recorded no curves")
    fig = new_figure(6.4, 3.8)
    ax = fig.add_subplot()
    rows = []
    for site, points in curves.items():
        m = np.array([p.get("magnitude") for p in points], dtype=float)
        acc = np.array([p.get("accuracy") for p in points], dtype=float) * 100
        (line,) = ax.plot(m, acc, marker="o", label=plain(site))
        low = [100 * p.get("low", p.get("accuracy")) for p in points]
        high = [100 * p.get("high", p.get("accuracy")) for p in points]
        ax.fill_between(m, low, high, alpha=0.15, color=line.get_color())
        for p in points:
            rows.append([site, p.get("magnitude"), pct(p.get("accuracy")), pct(p.get("low")),
                         pct(p.get("high")), pct(p.get("drop"))])  # fmt: skip
    base = s.get("baseline_accuracy")
    if isinstance(base, int | float):
        ax.axhline(100 * base, color="black", linestyle="--", linewidth=1, label="fault-free")
    mags = [p.get("magnitude") for pts in curves.values() for p in pts]
    if all(isinstance(x, int | float) and x > 0 for x in mags) and max(mags) > 4 * min(mags):
        ax.set_xscale("log")
    ax.set(xlabel=plain(f"error magnitude m ({s.get('template', '?')})"), ylabel="top-1 (%)")
    ax.set_title("per-site sensitivity (bands: 95% confidence)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    numbers = table(
        ["site", "magnitude", "accuracy (%)", "low (%)", "high (%)", "drop (%)"], rows,
        row_headers=True,
    )  # fmt: skip
    caption = (
        "Accuracy against error magnitude, one curve per injection site, with 95% confidence "
        "bands; the dashed line is the fault-free accuracy."
    )
    return report_figure(fig, caption, numbers)


def _ranking(s: dict) -> str:
    ranking = s.get("ranking") or []
    if not ranking:
        return ""
    fig = _ci_bars(
        [r.get("site") for r in ranking],
        [(r.get("score"), r.get("score_low"), r.get("score_high")) for r in ranking],
        "tab:purple",
        xlabel="mean accuracy drop (%)",
        title="sensitivity ranking (95% CI)",
    )
    rows = [
        [r.get("rank"), r.get("site"), pct(r.get("score")), pct(r.get("score_low")),
         pct(r.get("score_high")), f"{r.get('rank_low')}–{r.get('rank_high')}"]
        for r in ranking
    ]  # fmt: skip
    numbers = table(["rank", "site", "score (%)", "low (%)", "high (%)", "rank range"], rows)
    caption = (
        "Sites ranked by mean accuracy drop over the magnitudes, with bootstrap 95% confidence "
        "intervals of the score and of the rank."
    )
    return report_figure(fig, caption, numbers)


def _campaign(c: dict) -> str:
    def ci(x):
        x = x or {}
        return f"{pct(x.get('estimate'))} [{pct(x.get('low'))}, {pct(x.get('high'))}]"

    pairs = [
        ("campaign", c.get("name")),
        ("error model", c.get("error_model")),
        ("status", c.get("status")),
        ("trials", f"{c.get('trials')}/{c.get('planned')}"),
        ("golden accuracy (%)", pct(c.get("golden_accuracy"))),
        ("faulty accuracy (%)", pct(c.get("faulty_accuracy"))),
        ("critical rate (%), 95% CI", ci(c.get("critical_rate"))),
        ("accuracy drop (%), 95% CI", ci(c.get("accuracy_drop"))),
    ]
    parts = [kv_table(pairs, "fault campaign")]
    per_site = [p for p in c.get("per_site") or [] if isinstance(p, dict)]
    if per_site:
        rates = [p.get("critical_rate") or {} for p in per_site]
        fig = _ci_bars(
            [p.get("site") for p in per_site],
            [(r.get("estimate"), r.get("low"), r.get("high")) for r in rates],
            "tab:red",
            xlabel="critical rate (%)",
            title="critical faults per site (95% CI)",
            xlim=(0, 105),
        )
        rows = [
            [p.get("site"), p.get("trials"), p.get("critical"), pct(r.get("estimate")),
             pct(r.get("low")), pct(r.get("high"))]
            for p, r in zip(per_site, rates, strict=True)
        ]  # fmt: skip
        numbers = table(
            ["site", "trials", "critical", "rate (%)", "low (%)", "high (%)"], rows,
            row_headers=True,
        )  # fmt: skip
        caption = "Share of fault trials that changed a prediction (critical), per site."
        parts.append(report_figure(fig, caption, numbers))
    return "".join(parts)


@register_section("resilience")
def render(step: dict, context: ReportContext) -> Section:
    r = step["record"]
    s = r.get("sensitivity") or {}
    st = s.get("rank_stability") or {}
    pairs = [
        ("checkpoint", r.get("checkpoint")),
        ("data", f"{r.get('data', '?')} ({r.get('split', '?')} split, {r.get('samples')} samples)"),
        ("error model", s.get("template")),
        ("repeats", s.get("repeats")),
        ("fault-free accuracy (%)", pct(s.get("baseline_accuracy"))),
        ("rank stability", f"Kendall tau mean {fmt(st.get('kendall_tau_mean'), 3)}, 5th "
         f"percentile {fmt(st.get('kendall_tau_p05'), 3)} over {st.get('bootstrap', '?')} "
         f"bootstraps: {'stable' if st.get('stable') else 'not stable'}" if st else None),
    ]  # fmt: skip
    parts = [kv_table([(k, v) for k, v in pairs if v is not None])]
    notes = s.get("notes") or []
    if notes:
        parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    parts += ["<h3>sensitivity curves</h3>", _curves(s), "<h3>ranking</h3>", _ranking(s)]
    if isinstance(r.get("campaign"), dict):
        parts += ["<h3>fault campaign</h3>", _campaign(r["campaign"])]
    ranking = s.get("ranking") or []
    summary = f"most sensitive: {ranking[0].get('site')}" if ranking else ""
    return Section(step["name"], "".join(parts), summary)
