"""Report section of `cost` steps: totals and the per-layer breakdown of MACs and energy.

Record keys: `model`, `cost` (`total_macs`, `total_effective_macs`, `total_skipped_macs`,
`total_params`, `input_shape`, `layers`: [{name, kind, macs, effective_macs, params,
output_shape}]), `energy` (`memory`, `table` {name, source}, `total_pj`, `total_compute_pj`,
`total_memory_pj`, `layers`: [{name, compute_pj, memory_pj, total_pj, precision {arith,
weight_bits, act_bits}}])."""

from __future__ import annotations

from matplotlib.ticker import MaxNLocator

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


def _nj(pj) -> str:
    return fmt(pj / 1000.0) if isinstance(pj, int | float) else "–"


def _share(part, whole) -> str | None:
    ok = isinstance(part, int | float) and isinstance(whole, int | float) and whole
    return pct(part / whole) if ok else None


def _shape(shape) -> str:
    return "x".join(str(s) for s in shape) if isinstance(shape, list) else fmt(shape)


@register_section("cost")
def render(step: dict, context: ReportContext) -> Section:
    record = step["record"]
    cost = record.get("cost") or {}
    energy = record.get("energy") or {}
    etable = energy.get("table") or {}
    pairs = [
        ("model", record.get("model", cost.get("model"))),
        ("input shape", _shape(cost.get("input_shape"))),
        ("MACs", cost.get("total_macs")),
        ("effective MACs", cost.get("total_effective_macs")),
        ("skipped MACs", cost.get("total_skipped_macs")),
        ("parameters", cost.get("total_params")),
        ("energy per inference (nJ)", _nj(energy.get("total_pj"))),
        ("compute energy (nJ)", _nj(energy.get("total_compute_pj"))),
        ("memory energy (nJ)", _nj(energy.get("total_memory_pj"))),
        ("memory", energy.get("memory")),
        ("energy table", " — ".join(str(etable[k]) for k in ("name", "source") if etable.get(k))),
    ]
    parts = [kv_table(pairs, "totals")]
    layers = cost.get("layers") or []
    by_name = {str(x.get("name")): x for x in energy.get("layers") or []}
    if layers:
        parts += ["<h3>per layer</h3>", _breakdown(layers, by_name, cost, energy)]
    else:
        parts.append(note("the cost record lists no layers"))
    summary = f"{fmt(cost.get('total_macs'))} MACs, {_nj(energy.get('total_pj'))} nJ"
    return Section(step["name"], "".join(parts), summary)


def _breakdown(layers: list[dict], by_name: dict, cost: dict, energy: dict) -> str:
    names = [str(x.get("name")) for x in layers]
    macs = [float(x.get("effective_macs", x.get("macs")) or 0) for x in layers]
    compute = [float((by_name.get(n) or {}).get("compute_pj") or 0) / 1000 for n in names]
    memory = [float((by_name.get(n) or {}).get("memory_pj") or 0) / 1000 for n in names]
    height = max(2.6, 0.9 + 0.32 * len(names))
    fig = new_figure(7.2, height)
    mac_ax, en_ax = fig.subplots(1, 2, sharey=True)
    ys = list(range(len(names)))
    mac_ax.barh(ys, macs, color="tab:blue")
    mac_ax.set_yticks(ys, [plain(n) for n in names], fontsize=8)
    mac_ax.invert_yaxis()
    mac_ax.set(xlabel="MACs", title="MACs per layer")
    en_ax.barh(ys, compute, color="tab:orange", label="compute")
    en_ax.barh(ys, memory, left=compute, color="tab:gray", label="memory")
    en_ax.set(xlabel="energy (nJ)", title="energy per layer")
    en_ax.legend(fontsize=7)
    for ax in (mac_ax, en_ax):
        ax.grid(alpha=0.3, axis="x")
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    total_macs = sum(macs) or None
    total_pj = energy.get("total_pj") or None
    rows = []
    for layer, n in zip(layers, names, strict=True):
        e = by_name.get(n) or {}
        prec = e.get("precision") or {}
        mac = layer.get("effective_macs", layer.get("macs"))
        rows.append([
            n,
            layer.get("kind"),
            layer.get("macs"),
            _share(mac, total_macs),
            layer.get("params"),
            _shape(layer.get("output_shape")),
            prec.get("arith"),
            f"{prec.get('weight_bits', '?')}/{prec.get('act_bits', '?')}" if prec else None,
            _nj(e.get("compute_pj")),
            _nj(e.get("memory_pj")),
            _nj(e.get("total_pj")),
            _share(e.get("total_pj"), total_pj),
        ])  # fmt: skip
    headers = [
        "layer", "kind", "MACs", "MACs (%)", "params", "output", "arithmetic", "w/a bits",
        "compute (nJ)", "memory (nJ)", "energy (nJ)", "energy (%)",
    ]  # fmt: skip
    caption = (
        "Per-layer cost: MACs (left) and energy per inference split into arithmetic and memory "
        "traffic (right), from the cost model."
    )
    return report_figure(fig, caption, table(headers, rows, row_headers=True), wide=True)
