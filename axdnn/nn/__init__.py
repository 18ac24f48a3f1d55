"""Approximate and format layers, quantizers and observers, plans and `approximate(model, plan)`.

Extension points: a layer kind subclasses `ApproxLayer` (and the torch layer it replaces) and is
named in `approximate`'s `layer_map`; a new kind of per-layer knob is a `SpecPart` registered with
`register_spec_part`."""

from axdnn.nn.approximate import (
    DEFAULT_LAYER_MAP,
    ApproximationReport,
    LayerMap,
    LayerRecord,
    approximate,
    calibrate,
    multiplying_layers,
)
from axdnn.nn.base import ApproxLayer
from axdnn.nn.format_layers import FORMAT_LAYERS, FormatConv2d, FormatLinear
from axdnn.nn.functional import ConvOp, LinearOp
from axdnn.nn.layers import APPROX_LAYERS, ApproxConv2d, ApproxLinear, TableLayer
from axdnn.nn.matmul import approx_matmul
from axdnn.nn.plan import (
    PLAN_VERSION,
    FormatSpec,
    LayerSpec,
    MultiplierSpec,
    Plan,
    SpecPart,
    register_spec_part,
)
from axdnn.nn.quant import QuantScheme

__all__ = [
    "APPROX_LAYERS",
    "DEFAULT_LAYER_MAP",
    "FORMAT_LAYERS",
    "PLAN_VERSION",
    "ApproxConv2d",
    "ApproxLayer",
    "ApproxLinear",
    "ApproximationReport",
    "ConvOp",
    "FormatConv2d",
    "FormatLinear",
    "FormatSpec",
    "LayerMap",
    "LayerRecord",
    "LayerSpec",
    "LinearOp",
    "MultiplierSpec",
    "Plan",
    "QuantScheme",
    "SpecPart",
    "TableLayer",
    "approx_matmul",
    "approximate",
    "calibrate",
    "multiplying_layers",
    "register_spec_part",
]
