"""Resilience analyses: per-layer sensitivity sweeps and ranking, per-filter significance and
significance-driven pruning, and component selection with noise models."""

from axdnn.analysis.selection import (
    NoiseLibrary,
    SelectionResult,
    component_model_check,
    multiplier_costs,
    real_accuracy,
    select_components,
)
from axdnn.analysis.sensitivity import SensitivityResult, sensitivity_sweep
from axdnn.analysis.significance import (
    FilterScore,
    SignificanceResult,
    conv_layers,
    filter_significance,
    mask_points,
    masked_filters,
    prune_comparison,
)

__all__ = [
    "FilterScore",
    "NoiseLibrary",
    "SelectionResult",
    "SensitivityResult",
    "SignificanceResult",
    "component_model_check",
    "conv_layers",
    "filter_significance",
    "mask_points",
    "masked_filters",
    "multiplier_costs",
    "prune_comparison",
    "real_accuracy",
    "select_components",
    "sensitivity_sweep",
]
