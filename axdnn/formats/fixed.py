"""Fixed-point and integer formats: `fxp:[s|u]I.F` holds I integer bits (the sign bit counted
among them when signed) and F fraction bits, i.e. I+F bits of two's-complement (or unsigned)
code c with value c * 2^-F. `intN`/`uintN` are `fxp:sN.0`/`fxp:uN.0`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from axdnn.errors import FormatError
from axdnn.formats.base import Format, Options, register_format, with_options
from axdnn.formats.rounding import (
    ROUNDING_MODES,
    canonical_rounding,
    make_generator,
    round_to_integer,
)
from axdnn.formats.ste import clipped_straight_through, straight_through

OVERFLOW_MODES = ("saturate", "wrap")
MAX_FIXED_BITS = 32


@dataclass(frozen=True)
class FixedPoint(Format):
    """Signed or unsigned fixed point with `int_bits` + `frac_bits` bits, a rounding mode
    (nearest_even, nearest_away, floor, toward_zero, stochastic) and overflow saturate or wrap
    (two's-complement modular). NaN propagates; +-inf saturate in both overflow modes."""

    int_bits: int
    frac_bits: int
    signed: bool = True
    rounding: str = "nearest_even"
    overflow: str = "saturate"
    seed: int = 0

    kind: ClassVar[str] = "fixed"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rounding", canonical_rounding(self.rounding))
        if self.overflow not in OVERFLOW_MODES:
            raise FormatError(
                f"fixed-point overflow mode {self.overflow!r} is unknown; expected one of "
                f"{', '.join(OVERFLOW_MODES)}"
            )
        min_int = 1 if self.signed else 0
        total = self.int_bits + self.frac_bits
        if self.int_bits < min_int or self.frac_bits < 0 or not 1 <= total <= MAX_FIXED_BITS:
            raise FormatError(
                f"fixed-point widths int_bits={self.int_bits}, frac_bits={self.frac_bits} "
                f"(signed={self.signed}) are invalid; need int_bits >= {min_int} (the sign bit "
                f"counts as an integer bit), frac_bits >= 0 and 1 <= int_bits+frac_bits <= "
                f"{MAX_FIXED_BITS}"
            )

    # ---- geometry ---------------------------------------------------------------------------
    @property
    def bits(self) -> int:
        return self.int_bits + self.frac_bits

    @property
    def step(self) -> float:
        """Value of one LSB: 2^-frac_bits."""
        return 2.0**-self.frac_bits

    @property
    def code_min(self) -> int:
        return -(2 ** (self.bits - 1)) if self.signed else 0

    @property
    def code_max(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def min_value(self) -> float:
        return self.code_min * self.step

    @property
    def max_value(self) -> float:
        return self.code_max * self.step

    @property
    def spec(self) -> str:
        if self.frac_bits == 0:
            base = f"{'' if self.signed else 'u'}int{self.int_bits}"
        else:
            base = f"fxp:{'s' if self.signed else 'u'}{self.int_bits}.{self.frac_bits}"
        seed = self.seed if self.rounding == "stochastic" else 0
        return with_options(
            base,
            [
                ("round", self.rounding, "nearest_even"),
                ("overflow", self.overflow, "saturate"),
                ("seed", seed, 0),
            ],
        )

    # ---- codes ------------------------------------------------------------------------------
    def codes_float(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Integer codes of `x` as a float64 tensor (exact; NaN where x is NaN)."""
        s = x.detach().to(torch.float64) * (2.0**self.frac_bits)
        if self.rounding == "stochastic" and generator is None:
            generator = make_generator(self.seed, s.device)
        c = round_to_integer(s, self.rounding, generator)
        lo, hi = float(self.code_min), float(self.code_max)
        if self.overflow == "wrap":
            span = float(2**self.bits)
            finite = torch.isfinite(c)
            # fmod is exact; reduce first so that subtracting lo cannot round for huge c
            w = torch.fmod(torch.where(finite, c, torch.zeros_like(c)), span)
            w = torch.fmod(w - lo, span)
            w = torch.where(w < 0, w + span, w) + lo
            c = torch.where(finite, w, c)
        return torch.clamp(c, lo, hi)

    def to_codes(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Integer codes (int64) of `x`: value = code * step. NaN has no code and is an error."""
        c = self.codes_float(x, generator)
        if torch.isnan(c).any():
            raise FormatError(f"format {self.spec!r}: NaN values have no fixed-point code")
        return c.to(torch.int64)

    def from_codes(self, codes: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Values of integer `codes` (each within [code_min, code_max]) as `dtype`."""
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise FormatError(
                f"format {self.spec!r}: codes must be an integer tensor, got {codes.dtype}"
            )
        c = codes.to(torch.int64)
        if c.numel() and (int(c.min()) < self.code_min or int(c.max()) > self.code_max):
            raise FormatError(
                f"format {self.spec!r}: codes span [{int(c.min())}, {int(c.max())}], outside "
                f"[{self.code_min}, {self.code_max}]"
            )
        return (c.to(torch.float64) * self.step).to(dtype)

    # ---- quantization -----------------------------------------------------------------------
    def _quantize(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        q = (self.codes_float(x, generator) * self.step).to(x.dtype)
        if self.overflow == "saturate":
            return clipped_straight_through(x, q, self.min_value, self.max_value)
        return straight_through(x, q)


_FXP_FORM = (
    "fxp:[s|u]I.F[,round=" + "|".join(ROUNDING_MODES) + "][,overflow=saturate|wrap][,seed=N]"
)
_INT_FORM = "intN | uintN (N=1..32; same options as fxp)"


def _fixed_options(opts: Options, signed: bool, int_bits: int, frac_bits: int) -> FixedPoint:
    fmt = FixedPoint(
        int_bits=int_bits,
        frac_bits=frac_bits,
        signed=signed,
        rounding=opts.get_str("round", "nearest_even") or "nearest_even",
        overflow=(opts.get_str("overflow", "saturate") or "saturate").lower(),
        seed=opts.get_int("seed", 0),
    )
    opts.finish()
    return fmt


@register_format("fxp", _FXP_FORM)
def _build_fxp(match: re.Match[str], arg: str | None, opts: Options) -> Format:
    m = re.fullmatch(r"([su]?)(\d+)\.(\d+)", (arg or "").lower())
    if m is None:
        raise opts.bad_arg(arg, "[s|u]I.F, e.g. 8.4, s8.4 or u8.0")
    return _fixed_options(opts, m.group(1) != "u", int(m.group(2)), int(m.group(3)))


@register_format(r"(u?)int(\d+)", _INT_FORM)
def _build_int(match: re.Match[str], arg: str | None, opts: Options) -> Format:
    if arg is not None:
        raise opts.bad_arg(arg, "no argument after intN/uintN")
    return _fixed_options(opts, match.group(1) != "u", int(match.group(2)), 0)
