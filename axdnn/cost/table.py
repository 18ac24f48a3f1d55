"""Per-layer cost tables for people: plain text (`format_cost_table`) or a rich Table.

Both are built from the report records only: MACs in millions, parameter and activation counts
per sample, energy in nJ or uJ (one unit per table, chosen from the largest total).
"""

from __future__ import annotations

from rich.table import Table

from axdnn.cost.energy import EnergyReport
from axdnn.cost.records import CostReport, LayerCost

__all__ = ["cost_table_rows", "format_cost_table", "rich_cost_table"]

_RIGHT_FROM = 3  # columns from this index on are numbers (right-aligned)


def _energy_unit(energy: EnergyReport) -> tuple[str, float]:
    """(unit, pJ per unit) chosen so the largest figure reads comfortably."""
    return ("uJ", 1e6) if energy.total_pj >= 1e6 else ("nJ", 1e3)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape) if shape else "-"


def _mmacs(n: int) -> str:
    return f"{n / 1e6:.3f}"


def cost_table_rows(
    report: CostReport, energy: EnergyReport | None = None
) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, one row per layer, totals row) as strings; shared by the text and rich tables."""
    skipped = report.total_skipped_macs > 0
    header = ["layer", "kind", "output", "MACs (M)"]
    if skipped:
        header += ["skipped (M)", "effective (M)"]
    header += ["params", "in elems", "out elems"]
    unit, scale = _energy_unit(energy) if energy is not None else ("", 1.0)
    if energy is not None:
        header += [f"compute ({unit})", f"memory ({unit})", f"energy ({unit})"]
    by_name = {x.name: x for x in energy.layers} if energy is not None else {}

    def row(layer: LayerCost) -> list[str]:
        cells = [layer.name or "(model)", layer.kind, _shape(layer.output_shape)]
        cells.append(_mmacs(layer.macs))
        if skipped:
            cells += [_mmacs(layer.skipped_macs), _mmacs(layer.effective_macs)]
        cells += [f"{layer.params:,}", f"{layer.input_elems:,}", f"{layer.output_elems:,}"]
        if energy is not None:
            e = by_name.get(layer.name)
            cells += (
                [f"{v / scale:.3f}" for v in (e.compute_pj, e.memory_pj, e.total_pj)]
                if e is not None
                else ["-", "-", "-"]
            )
        return cells

    rows = [row(layer) for layer in report.layers]
    total = ["total", "", "", _mmacs(report.total_macs)]
    if skipped:
        total += [_mmacs(report.total_skipped_macs), _mmacs(report.total_effective_macs)]
    total += [f"{report.total_params:,}", "", ""]
    if energy is not None:
        total += [
            f"{v / scale:.3f}"
            for v in (energy.total_compute_pj, energy.total_memory_pj, energy.total_pj)
        ]
    return header, rows, total


def format_cost_table(report: CostReport, energy: EnergyReport | None = None) -> str:
    """Plain-text per-layer table with a totals line (params total counts every parameter)."""
    header, rows, total = cost_table_rows(report, energy)
    widths = [max(len(r[i]) for r in (header, *rows, total)) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if i >= _RIGHT_FROM else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(["-" * w for w in widths]))
    title = f"{report.model or 'model'} at input {_shape(report.input_shape)} (per sample)"
    if energy is not None:
        title += f", memory: {energy.memory}, table: {energy.table.get('name', '?')}"
    return "\n".join([title, line(header), rule, *(line(r) for r in rows), rule, line(total)])


def rich_cost_table(report: CostReport, energy: EnergyReport | None = None) -> Table:
    """The same table as a `rich.table.Table` for terminal output."""
    header, rows, total = cost_table_rows(report, energy)
    table = Table(title=f"{report.model or 'model'} at input {_shape(report.input_shape)}")
    for i, name in enumerate(header):
        table.add_column(name, justify="right" if i >= _RIGHT_FROM else "left")
    for r in rows:
        table.add_row(*r)
    table.add_row(*total, style="bold", end_section=True)
    return table
