"""Report section of `selection` steps: the multiplier chosen for each layer, the predicted
accuracy (noise model) against the real one (table simulation), and the greedy search's trials.

Record keys: `budget`, `cost_rule`, `costs` {spec: cost}, `baseline_accuracy`, `choice`
{layer: spec or null}, `predicted_accuracy`, `predicted_low`, `predicted_high`, `real_accuracy`,
`exact_layers`, `relative_cost`, `steps` [{layer, multiplier, predicted_accuracy, accepted}]."""

from __future__ import annotations

from axdnn.report.html import ReportContext, Section, kv_table, pct, register_section, table


@register_section("selection")
def render(step: dict, context: ReportContext) -> Section:
    r = step["record"]
    costs = r.get("costs") or {}
    low, high = r.get("predicted_low"), r.get("predicted_high")
    pairs = [
        ("accuracy budget (points)", 100 * r["budget"] if "budget" in r else None),
        ("cost of a multiplier", r.get("cost_rule")),
        ("float accuracy (%)", pct(r.get("baseline_accuracy"))),
        ("predicted accuracy (%)", pct(r.get("predicted_accuracy"))),
        ("predicted 95% interval (%)", f"{pct(low)} - {pct(high)}" if low is not None else None),
        ("real accuracy, table simulation (%)", pct(r.get("real_accuracy"))),
        ("relative cost (exact = 1)", r.get("relative_cost")),
        ("layers left exact", ", ".join(r.get("exact_layers") or []) or "none"),
    ]
    choice = r.get("choice") or {}
    rows = [
        [layer, spec or "exact (no candidate fits)", costs.get(spec)]
        for layer, spec in choice.items()
    ]
    trials = [
        [t.get("layer"), t.get("multiplier"), pct(t.get("predicted_accuracy")),
         "yes" if t.get("accepted") else "no"]
        for t in r.get("steps") or []
    ]  # fmt: skip
    html = (
        kv_table(pairs, "selection")
        + table(["layer", "multiplier", "cost"], rows, "chosen per layer")
        + "<details><summary>every trial of the greedy search</summary>"
        + table(["layer", "multiplier", "predicted (%)", "accepted"], trials)
        + "</details>"
    )
    summary = f"real {pct(r.get('real_accuracy'))} %, relative cost {r.get('relative_cost')}"
    return Section(step["name"], html, summary)
