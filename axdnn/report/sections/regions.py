"""Report section of `regions` steps: per region the Pareto front of error against energy with
the chosen network and the fixed baseline marked, and a table comparing the two.

Record keys: `regions` [one `axdnn regions search` record each: `region` {name, metric},
`bound`, `cost`, `trials` [{trial, text, error, macs, energy_pj}], `pareto` [trial numbers],
`chosen` / `baseline` {text, error, test_error, test_meets_bound, macs, energy_pj,
speedup_vs_region}, `comparison` {energy_reduction, mac_reduction, speedup, win}], `summary`
{wins, mean_energy_reduction, mean_speedup}."""

from __future__ import annotations

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

COLUMNS = [
    "",
    "network",
    "error (held out)",
    "error (test)",
    "within bound",
    "MACs",
    "energy (pJ)",
    "speed-up vs numpy",
]


def _front(record: dict) -> str:
    trials = record.get("trials") or []
    if not trials:
        return note("the search recorded no trials")
    on_front = set(record.get("pareto") or [])
    fig = new_figure(6.0, 3.6)
    ax = fig.add_subplot()
    ax.scatter(
        [t["energy_pj"] for t in trials],
        [t["error"] for t in trials],
        s=14,
        color="tab:gray",
        alpha=0.6,
        label="trials",
    )
    front = sorted((t for t in trials if t["trial"] in on_front), key=lambda t: t["energy_pj"])
    ax.plot(
        [t["energy_pj"] for t in front],
        [t["error"] for t in front],
        "o-",
        color="tab:blue",
        label="Pareto front",
    )
    for key, marker, color in (("chosen", "*", "tab:red"), ("baseline", "s", "black")):
        c = record.get(key)
        if c:
            ax.scatter(
                [c["energy_pj"]],
                [c["error"]],
                marker=marker,
                s=90,
                color=color,
                label=key,
                zorder=3,
            )
    ax.axhline(record["bound"], color="tab:red", linestyle="--", linewidth=1, label="bound")
    ax.set_xscale("log")
    metric = (record.get("region") or {}).get("metric", "error")
    ax.set(xlabel="energy per inference (pJ)", ylabel=plain(f"{metric} (held out)"))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    rows = [[t["trial"], t["text"], t["error"], t["macs"], t["energy_pj"]] for t in front]
    numbers = table(["trial", "network", "error", "MACs", "energy (pJ)"], rows, "Pareto front")
    name = (record.get("region") or {}).get("name", "?")
    return report_figure(fig, f"{name}: error against energy of every trial", numbers)


def _comparison(record: dict) -> str:
    rows = []
    for key in ("chosen", "baseline"):
        c = record.get(key)
        if c:
            ok = "yes" if c.get("test_meets_bound") else "no"
            rows.append(
                [
                    key,
                    c["text"],
                    c["error"],
                    c.get("test_error"),
                    ok,
                    c["macs"],
                    c["energy_pj"],
                    c.get("speedup_vs_region"),
                ]
            )
    return table(COLUMNS, rows, f"bound {fmt(record.get('bound'))}", row_headers=True)


def _region_html(record: dict) -> str:
    r = record.get("region") or {}
    parts = [f"<h3>{esc(r.get('name', '?'))}</h3>", _front(record), _comparison(record)]
    cmp = record.get("comparison")
    if cmp:
        pairs = [
            ("energy reduction vs baseline", cmp.get("energy_reduction")),
            ("MAC reduction vs baseline", cmp.get("mac_reduction")),
            ("measured speed-up vs baseline", cmp.get("speedup")),
            ("win (within bound, cheaper)", "yes" if cmp.get("win") else "no"),
        ]
        parts.append(kv_table(pairs))
    return "".join(parts)


@register_section("regions")
def render(step: dict, context: ReportContext) -> Section:
    record = step["record"]
    regions = record.get("regions") or []
    s = record.get("summary") or {}
    pairs = [
        ("regions", len(regions)),
        ("wins over the baseline", s.get("wins")),
        ("mean energy reduction (geometric)", s.get("mean_energy_reduction")),
        ("mean speed-up (geometric)", s.get("mean_speedup")),
    ]
    parts = [kv_table(pairs, "summary")] + [_region_html(r) for r in regions]
    summary = f"{s.get('wins')}/{len(regions)} wins" if s.get("wins") is not None else ""
    return Section(step["name"], "".join(parts), summary)
