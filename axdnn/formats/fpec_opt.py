"""FPEC-Opt: greedy per-layer choice of FPEC formats under an accuracy budget (after the
layer-wise search of Compensated-DNN, Jain et al., DAC 2018). For each layer in turn: drop
fraction bits while the score stays within budget; when a drop fails, try it again with more
error-magnitude bits (c + 1 .. 2); finally raise the skip threshold (sparser compensation)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from axdnn.errors import FormatError
from axdnn.formats.base import Format
from axdnn.formats.fixed import FixedPoint
from axdnn.formats.fpec import MAX_MAG_BITS, Fpec

SKIP_STEPS = (0.125, 0.1875, 0.25, 0.3125, 0.375, 0.4375)


@dataclass
class FpecOptStep:
    """One evaluation of the search: which layer, what was tried, its score, and the verdict."""

    layer: str
    action: str  # "reference", "shrink_frac", "add_magnitude" or "raise_skip"
    spec: str
    score: float
    accepted: bool


@dataclass
class FpecOptResult:
    """The chosen per-layer formats, the reference score, the final score and every step."""

    formats: dict[str, Fpec]
    reference: float
    budget: float
    final_score: float
    trace: list[FpecOptStep] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        return len(self.trace)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record; formats as spec strings."""
        return {
            "formats": {k: f.spec for k, f in self.formats.items()},
            "bits": {k: f.bits for k, f in self.formats.items()},
            "reference": self.reference,
            "budget": self.budget,
            "final_score": self.final_score,
            "trace": [dataclasses.asdict(s) for s in self.trace],
        }


def as_fpec(fmt: Format) -> Fpec:
    """An FPEC start format: FPEC as is, a fixed-point format as FPEC with c = 0."""
    if isinstance(fmt, Fpec):
        return fmt
    if (
        isinstance(fmt, FixedPoint)
        and fmt.rounding == "nearest_even"
        and fmt.overflow == "saturate"
    ):
        return Fpec(fmt.int_bits, fmt.frac_bits, signed=fmt.signed)
    raise FormatError(
        f"FPEC-Opt start format {fmt.spec!r} is not FPEC; expected an fpec:I.F format or a "
        f"nearest-even saturating fixed-point format (fxp:I.F)"
    )


def fpec_opt(
    evaluate: Callable[[dict[str, Format]], float],
    layers: list[str],
    budget: float,
    start: Format,
    reference: float | None = None,
) -> FpecOptResult:
    """Greedy per-layer FPEC search: `evaluate(formats)` scores a full per-layer assignment
    (higher is better); a change is kept when score >= reference - budget, where `reference` is
    the score of `start` in every layer unless given."""
    if not layers or len(set(layers)) != len(layers):
        raise FormatError(f"FPEC-Opt layers {layers!r} must be a non-empty list of unique names")
    if budget < 0:
        raise FormatError(f"FPEC-Opt budget {budget!r} must be >= 0 (allowed score drop)")
    first = as_fpec(start)
    current: dict[str, Fpec] = {name: first for name in layers}
    trace: list[FpecOptStep] = []
    start_score = float(evaluate(dict(current)))
    trace.append(FpecOptStep("*", "reference", first.spec, start_score, True))
    ref = start_score if reference is None else float(reference)
    floor = ref - budget
    score = start_score

    def attempt(layer: str, cand: Fpec, action: str) -> bool:
        nonlocal score
        s = float(evaluate({**current, layer: cand}))
        ok = s >= floor
        trace.append(FpecOptStep(layer, action, cand.spec, s, ok))
        if ok:
            current[layer], score = cand, s
        return ok

    for layer in layers:
        while current[layer].frac_bits > 0 and current[layer].compute_bits > 1:
            f = current[layer]
            fewer = dataclasses.replace(f, frac_bits=f.frac_bits - 1)
            if attempt(layer, fewer, "shrink_frac"):
                continue
            more = [
                dataclasses.replace(fewer, mag_bits=c, skip=None)
                for c in range(f.mag_bits + 1, MAX_MAG_BITS + 1)
            ]
            if not any(attempt(layer, cand, "add_magnitude") for cand in more):
                break
        for t in SKIP_STEPS:
            if t > current[layer].threshold and not attempt(
                layer, dataclasses.replace(current[layer], skip=t), "raise_skip"
            ):
                break
    return FpecOptResult(dict(current), ref, budget, score, trace)
