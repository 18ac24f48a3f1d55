"""Cost room: per-layer operation counting, the energy model and cost tables.

`count_ops(model, input_shape)` gives a `CostReport` (MACs, params, activation sizes per layer);
`estimate_energy(report, precision)` turns it into pJ with the Horowitz 45 nm table by default;
`precision_from_model(model)` prices approximate/format layers by their hardware profiles;
`format_cost_table(report, energy)` renders both for people.
"""

from axdnn.cost.counters import ModuleCounter, OpCount, register_module_counter
from axdnn.cost.counting import count_ops
from axdnn.cost.energy import (
    HOROWITZ_45NM,
    HOROWITZ_45NM_YAML,
    EnergyReport,
    EnergyTable,
    LayerEnergy,
    LayerPrecision,
    estimate_energy,
)
from axdnn.cost.precision import (
    float_mul_energy,
    layer_profiles,
    precision_from_model,
    precision_from_profile,
)
from axdnn.cost.profile import HardwareProfile, ProfiledLayer
from axdnn.cost.records import CostReport, LayerCost
from axdnn.cost.table import format_cost_table, rich_cost_table

__all__ = [
    "HOROWITZ_45NM",
    "HOROWITZ_45NM_YAML",
    "CostReport",
    "EnergyReport",
    "EnergyTable",
    "HardwareProfile",
    "LayerCost",
    "LayerEnergy",
    "LayerPrecision",
    "ModuleCounter",
    "OpCount",
    "ProfiledLayer",
    "count_ops",
    "estimate_energy",
    "float_mul_energy",
    "format_cost_table",
    "layer_profiles",
    "precision_from_model",
    "precision_from_profile",
    "register_module_counter",
    "rich_cost_table",
]
