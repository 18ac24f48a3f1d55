"""Cost tables: every layer and the totals appear, in the stated units."""

from rich.console import Console
from torch import nn

from axdnn.cost import count_ops
from axdnn.cost.energy import LayerPrecision, estimate_energy
from axdnn.cost.table import cost_table_rows, format_cost_table, rich_cost_table


def _report():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 64, 10))
    return count_ops(model, (3, 8, 8))  # conv: 8*64*27 = 13824 MACs; fc: 5120


def test_plain_table_rows_and_totals():
    text = format_cost_table(_report())
    lines = text.splitlines()
    assert lines[0].startswith("Sequential at input 3x8x8")
    assert any(line.split()[:2] == ["0", "conv2d"] and "0.014" in line for line in lines)
    assert any(line.split()[:2] == ["2", "linear"] and "0.005" in line for line in lines)
    total = lines[-1].split()
    assert total[0] == "total" and total[1] == "0.019"  # 18944 MACs in M
    assert total[2] == f"{224 + 5130:,}"
    assert "skipped" not in text and "energy" not in text


def test_table_with_energy_and_skipped_columns():
    report = _report().with_skipped({"0": 6912})
    energy = estimate_energy(report, LayerPrecision.integer())
    header, rows, total = cost_table_rows(report, energy)
    assert header[4:6] == ["skipped (M)", "effective (M)"]
    assert header[-1] == "energy (nJ)"
    assert rows[0][4] == "0.007"
    assert total[-1] == f"{energy.total_pj / 1e3:.3f}"
    text = format_cost_table(report, energy)
    assert "memory: sram" in text and "horowitz-45nm" in text


def test_energy_unit_switches_to_microjoules():
    report = count_ops(nn.Conv2d(16, 16, 3, padding=1), (16, 32, 32))  # 2.36 M fp32 MACs
    energy = estimate_energy(report)
    assert energy.total_pj > 1e6
    header, _, total = cost_table_rows(report, energy)
    assert header[-1] == "energy (uJ)"
    assert total[-1] == f"{energy.total_pj / 1e6:.3f}"


def test_rich_table_matches_rows():
    report = _report()
    table = rich_cost_table(report, estimate_energy(report))
    header, rows, _ = cost_table_rows(report, estimate_energy(report))
    assert [c.header for c in table.columns] == header
    assert table.row_count == len(rows) + 1
    console = Console(record=True, width=200)
    console.print(table)
    assert "conv2d" in console.export_text()
