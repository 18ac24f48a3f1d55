"""Approximate and format layers, quantizers and observers, plans and `approximate(model, plan)`."""

from axdnn.nn.approximate import (
    ApproximationReport,
    LayerRecord,
    approximate,
    calibrate,
    multiplying_layers,
)
from axdnn.nn.format_layers import FORMAT_LAYERS, FormatConv2d, FormatLinear
from axdnn.nn.layers import APPROX_LAYERS, ApproxConfig, ApproxConv2d, ApproxLinear
from axdnn.nn.matmul import approx_matmul
from axdnn.nn.plan import LayerSpec, Plan
from axdnn.nn.quant import QuantScheme

__all__ = [
    "APPROX_LAYERS",
    "FORMAT_LAYERS",
    "ApproxConfig",
    "ApproxConv2d",
    "ApproxLinear",
    "ApproximationReport",
    "FormatConv2d",
    "FormatLinear",
    "LayerRecord",
    "LayerSpec",
    "Plan",
    "QuantScheme",
    "approx_matmul",
    "approximate",
    "calibrate",
    "multiplying_layers",
]
