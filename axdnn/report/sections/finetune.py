"""Report section of `finetune` steps: accuracy in float, approximate before and after
fine-tuning, and the fine-tuning curve.

Record keys: `model`, `plan` (`layers` {pattern: {multiplier, gradient, ...}}), `float_top1`,
`before_top1`, `after_top1`, `recovered_fraction`, `seconds`, `history` (as train's),
`approximation` (as evaluate's)."""

from __future__ import annotations

from axdnn.report.html import (
    ReportContext,
    Section,
    fmt,
    kv_table,
    pct,
    register_section,
    table,
)
from axdnn.report.sections.train import curves_figure


def _plan_rows(plan: dict) -> list[list]:
    rows = []
    for pattern, spec in (plan.get("layers") or {}).items():
        spec = spec or {}
        hardware = spec.get("multiplier") or (
            f"weights {spec.get('weight_format') or 'float'}, "
            f"inputs {spec.get('act_format') or 'float'}"
        )
        rows.append([pattern, hardware, spec.get("gradient"), spec.get("backend")])
    return rows


@register_section("finetune")
def render(step: dict, context: ReportContext) -> Section:
    r = step["record"]
    history = r.get("history") or {}
    float_top1, before, after = r.get("float_top1"), r.get("before_top1"), r.get("after_top1")
    rec = r.get("recovered_fraction")
    pairs = [
        ("model", r.get("model")),
        ("float top-1 (%)", pct(float_top1)),
        ("approximate, before fine-tuning (%)", pct(before)),
        ("approximate, after fine-tuning (%)", pct(after)),
        ("recovered share of the loss (%)", pct(rec) if rec is not None else "– (nothing lost)"),
        ("fine-tuning time (s)", fmt(r.get("seconds"), 3)),
        ("epochs", len(history.get("epochs") or [])),
    ]
    parts = [kv_table(pairs, "accuracy (test split)")]
    plan_rows = _plan_rows(r.get("plan") or {})
    if plan_rows:
        parts.append(table(["layers", "hardware", "gradient", "backend"], plan_rows, "plan"))
    layers = (r.get("approximation") or {}).get("layers") or []
    exact = [x for x in layers if x.get("status") != "approximate"]
    if layers:
        parts.append(
            table(
                ["layer", "kind", "status", "multiplier", "reason"],
                [
                    [
                        x.get("name"),
                        x.get("kind"),
                        x.get("status"),
                        x.get("multiplier"),
                        x.get("reason") or "",
                    ]
                    for x in layers
                ],  # fmt: skip
                f"layers ({len(exact)} stayed exact)",
                row_headers=True,
            )
        )
    refs = [(k, v) for k, v in (("float", float_top1), ("before", before), ("after", after))
            if isinstance(v, int | float)]  # fmt: skip
    parts += [
        "<h3>fine-tuning curve</h3>",
        curves_figure(
            history.get("epochs") or [],
            "Fine-tuning curves with the approximation in the forward pass: loss and top-1 per "
            "epoch; dotted lines give the test top-1 in float, and approximate before and after "
            "fine-tuning.",
            history.get("best_epoch"),
            references=[(f"{k} (test)", v) for k, v in refs],
        ),
    ]
    summary = f"{pct(before)} % → {pct(after)} % (float {pct(float_top1)} %)"
    return Section(step["name"], "".join(parts), summary)
