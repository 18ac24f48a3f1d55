"""Catalogue of the built-in behavioural multipliers at one operand width, with their metrics
(what `axdnn multipliers list` shows)."""

from __future__ import annotations

from typing import Any

from axdnn.arith.models import MODELS, canonical_name
from axdnn.arith.multiplier import MAX_BITS, MIN_BITS, Operands
from axdnn.arith.spec import get_multiplier
from axdnn.errors import MultiplierError


def catalogue(width: int = 8, signed: bool = False) -> list[dict[str, Any]]:
    """One JSON-ready record per built-in model and representative parameter set at `width`
    bits (both operands), each with its spec, provenance, content hash and error metrics."""
    if isinstance(width, bool) or not isinstance(width, int) or not MIN_BITS <= width <= MAX_BITS:
        raise MultiplierError(
            f"catalogue width {width!r} is invalid; accepted integers {MIN_BITS}..{MAX_BITS}"
        )
    ops = Operands(width, width, bool(signed), bool(signed))
    rows = []
    for name, model in MODELS.items():
        for params in model.representative(width):
            spec = canonical_name(name, params, ops)
            m = get_multiplier(spec)
            rows.append(
                {
                    "spec": spec,
                    "model": name,
                    "params": dict(m.provenance.get("params", {})),
                    "source": model.cite,
                    "content_hash": m.content_hash,
                    "metrics": m.metrics().to_dict(),
                }
            )
    return rows
