"""Report section of `explore` steps: the front plot (accuracy against energy, every trial and
the Pareto front), the front's points with their plan files, and the chosen point's per-layer
choices.

Record keys (see `axdnn.experiment.explore.front_record`): `study`, `strategy`, `trials`,
`float_accuracy_full`, `reference`, `reference_energy_pj`, `max_drop`, `front` [{number,
plan_file, search_accuracy, val_accuracy, val_drop, energy_pj, energy_saving, choices}],
`chosen`, `all_trials` [{number, accuracy, energy_pj, feasible}]."""

from __future__ import annotations

from axdnn.report.html import (
    ReportContext,
    Section,
    figure,
    kv_table,
    new_figure,
    pct,
    register_section,
    table,
)


def draw_front(ax, record: dict) -> None:
    """Accuracy (search proxy) against energy of every trial; the front in colour."""
    trials = record.get("all_trials") or []
    for feasible, colour, label in (
        (True, "tab:gray", "feasible"),
        (False, "lightgray", "over a limit"),
    ):
        chosen = [t for t in trials if bool(t["feasible"]) == feasible]
        ax.scatter([t["energy_pj"] for t in chosen], [100 * t["accuracy"] for t in chosen],
                   s=12, color=colour, label=f"trial ({label})")  # fmt: skip
    front = record.get("front") or []
    ax.plot([p["energy_pj"] for p in front], [100 * p["search_accuracy"] for p in front],
            marker="o", color="tab:red", label="Pareto front")  # fmt: skip
    ref = record.get("reference_energy_pj")
    if ref:
        ax.axvline(ref, color="black", linestyle=":", linewidth=1, label=record.get("reference"))
    ax.set_xlabel("energy per sample (pJ, cost model)")
    ax.set_ylabel("top-1 on the search subset (%)")
    ax.legend(fontsize=7, loc="lower right")


@register_section("explore")
def render(step: dict, context: ReportContext) -> Section:
    r = step["record"]
    front = r.get("front") or []
    pairs = [
        ("study / strategy", f"{r.get('study')} / {r.get('strategy')}"),
        ("trials", r.get("trials")),
        ("float val top-1 (%)", pct(r.get("float_accuracy_full"))),
        ("reference", f"{r.get('reference')}, {r.get('reference_energy_pj', 0):.1f} pJ"),
        ("drop limit (points)", None if r.get("max_drop") is None else 100 * r["max_drop"]),
    ]
    rows = [
        [p["number"], pct(p.get("val_accuracy") or p["search_accuracy"]), 100 * p["val_drop"],
         p["energy_pj"], pct(p["energy_saving"]), p["plan_file"]]
        for p in front
    ]  # fmt: skip
    numbers = table(
        ["trial", "val top-1 (%)", "drop (points)", "energy (pJ)", "saving (%)", "plan"], rows
    )
    fig = new_figure()
    draw_front(fig.add_subplot(1, 1, 1), r)
    html = kv_table(pairs, "exploration") + figure(fig, "accuracy against energy", numbers, True)
    chosen = r.get("chosen")
    if chosen:
        html += table(
            ["layer", "choice"], [[k, v] for k, v in chosen["choices"].items()],
            f"chosen: trial {chosen['number']} (lowest energy within the drop limit)",
        )  # fmt: skip
    summary = (
        f"{len(front)} front points; chosen saves {pct(chosen['energy_saving'])} %"
        if chosen
        else f"{len(front)} front points; none within the drop limit"
    )
    return Section(step["name"], html, summary)
