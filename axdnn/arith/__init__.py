"""Approximate arithmetic: `Multiplier` (a product table plus metadata), built-in behavioural
models, importers for table files and C models, error metrics, and the spec-string registry."""

from axdnn.arith.catalogue import catalogue
from axdnn.arith.importers import load_c_model, load_table_file
from axdnn.arith.metrics import ErrorMetrics, compute_metrics
from axdnn.arith.models import MODELS, build_model
from axdnn.arith.multiplier import Multiplier, Operands, operand_range, operand_values
from axdnn.arith.spec import (
    ParsedSpec,
    get_multiplier,
    list_multipliers,
    parse_spec,
    register_multiplier,
)

__all__ = [
    "MODELS",
    "ErrorMetrics",
    "Multiplier",
    "Operands",
    "ParsedSpec",
    "build_model",
    "catalogue",
    "compute_metrics",
    "get_multiplier",
    "list_multipliers",
    "load_c_model",
    "load_table_file",
    "operand_range",
    "operand_values",
    "parse_spec",
    "register_multiplier",
]
