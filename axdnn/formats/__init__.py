"""Number formats and rounding: integer/fixed point, floats with any e/m and truncated mantissa,
FPEC (compensated fixed point) and FPEC-Opt, PACT, DoReFa, binary/ternary; straight-through
estimators; one spec-string registry (`parse_format`)."""

from axdnn.formats.base import Format, format_forms, parse_format, register_format
from axdnn.formats.binary import Binary, Ternary
from axdnn.formats.dorefa import DoReFa
from axdnn.formats.fixed import FixedPoint
from axdnn.formats.floating import FloatFormat, Identity
from axdnn.formats.fpec import (
    Fpec,
    FpecFields,
    FpecTensor,
    compensated_conv2d,
    compensated_linear,
    compensated_matmul,
    compensation_term,
    conv2d_compensation_term,
)
from axdnn.formats.fpec_opt import FpecOptResult, FpecOptStep, fpec_opt
from axdnn.formats.pact import PACT, PactFormat, pact
from axdnn.formats.rounding import ROUNDING_MODES, round_to_integer
from axdnn.formats.ste import clipped_straight_through, round_ste, straight_through

__all__ = [
    "PACT",
    "ROUNDING_MODES",
    "Binary",
    "DoReFa",
    "FixedPoint",
    "FloatFormat",
    "Format",
    "Fpec",
    "FpecFields",
    "FpecOptResult",
    "FpecOptStep",
    "FpecTensor",
    "Identity",
    "PactFormat",
    "Ternary",
    "clipped_straight_through",
    "compensated_conv2d",
    "compensated_linear",
    "compensated_matmul",
    "compensation_term",
    "conv2d_compensation_term",
    "format_forms",
    "fpec_opt",
    "pact",
    "parse_format",
    "register_format",
    "round_ste",
    "round_to_integer",
    "straight_through",
]
