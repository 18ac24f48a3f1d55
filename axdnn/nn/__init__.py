"""Approximate layers, quantizers and observers, plans and `approximate(model, plan)`."""

from axdnn.nn.approximate import (
    ApproximationReport,
    LayerRecord,
    approximate,
    calibrate,
    multiplying_layers,
)
from axdnn.nn.layers import APPROX_LAYERS, ApproxConfig, ApproxConv2d, ApproxLinear
from axdnn.nn.plan import LayerSpec, Plan
from axdnn.nn.quant import QuantScheme

__all__ = [
    "APPROX_LAYERS",
    "ApproxConfig",
    "ApproxConv2d",
    "ApproxLinear",
    "ApproximationReport",
    "LayerRecord",
    "LayerSpec",
    "Plan",
    "QuantScheme",
    "approximate",
    "calibrate",
    "multiplying_layers",
]
