"""Rounding a tensor of real numbers to integers in one of the standard modes, exactly (float64,
no per-element Python), shared by the fixed-point, float and FPEC formats."""

from __future__ import annotations

import torch
from torch import Tensor

from axdnn.errors import FormatError

ROUNDING_MODES = ("nearest_even", "nearest_away", "floor", "toward_zero", "stochastic")
_ALIASES = {
    "nearest": "nearest_even",
    "rne": "nearest_even",
    "even": "nearest_even",
    "rna": "nearest_away",
    "away": "nearest_away",
    "down": "floor",
    "rtz": "toward_zero",
    "trunc": "toward_zero",
    "zero": "toward_zero",
    "sr": "stochastic",
}


def canonical_rounding(mode: str, allowed: tuple[str, ...] = ROUNDING_MODES) -> str:
    """Resolve a rounding-mode name or alias (rne, rna, rtz, trunc, sr, ...) to its name."""
    name = _ALIASES.get(str(mode).strip().lower(), str(mode).strip().lower())
    if name not in allowed:
        raise FormatError(
            f"rounding mode {mode!r} is not supported; expected one of {', '.join(allowed)} "
            f"(aliases: {', '.join(f'{k}={v}' for k, v in _ALIASES.items() if v in allowed)})"
        )
    return name


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A torch.Generator on `device` seeded with `seed` (the formats' default noise source)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def round_to_integer(s: Tensor, mode: str, generator: torch.Generator | None = None) -> Tensor:
    """Round every element of float tensor `s` to an integer (same dtype) in `mode`.

    All modes are exact (no intermediate rounding); stochastic rounding goes up with probability
    equal to the fractional part, so it is unbiased: E[round(s)] = s. -0.0 stays signed."""
    if mode == "nearest_even":
        return torch.round(s)
    if mode == "toward_zero":
        return torch.trunc(s)
    if mode == "floor":
        return torch.floor(s)
    if mode == "nearest_away":
        a = s.abs()
        fl = torch.floor(a)
        return torch.copysign(fl + (a - fl >= 0.5).to(s.dtype), s)
    if mode == "stochastic":
        if generator is None:
            raise FormatError("stochastic rounding needs a torch.Generator; none was given")
        fl = torch.floor(s)
        u = torch.rand(s.shape, generator=generator, dtype=s.dtype, device=s.device)
        return torch.copysign(fl + (u < s - fl).to(s.dtype), s)
    raise FormatError(f"rounding mode {mode!r} is unknown; expected one of {ROUNDING_MODES}")
