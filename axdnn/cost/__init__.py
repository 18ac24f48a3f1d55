"""Cost room: operation counting, the energy model and cost tables."""

from axdnn.cost.counting import (
    CostReport,
    LayerCost,
    ModuleCounter,
    OpCount,
    count_ops,
    register_module_counter,
)

__all__ = [
    "CostReport",
    "LayerCost",
    "ModuleCounter",
    "OpCount",
    "count_ops",
    "register_module_counter",
]
