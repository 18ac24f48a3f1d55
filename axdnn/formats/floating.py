"""Binary floating-point formats of any exponent/mantissa width (`float:eEmM[fn]`), with bias,
subnormals on/off, rounding modes, overflow to inf / saturation / NaN, and truncation of k mantissa
LSBs after rounding (the "hard approximation" of PCM, Kim et al., DATE 2020). fp16, bf16,
fp8_e4m3 (OCP 'fn': no inf, NaN only S.1111.111) and fp8_e5m2 agree bit for bit with torch's
casts for nearest-even rounding. `fp32` is the identity."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from axdnn.errors import FormatError
from axdnn.formats.base import Format, Options, register_format, with_options
from axdnn.formats.rounding import (
    canonical_rounding,
    make_generator,
    round_to_integer,
)
from axdnn.formats.ste import clipped_straight_through

FLOAT_OVERFLOW_MODES = ("inf", "saturate", "nan")
_ALIASES = {
    (5, 10, False): "fp16",
    (8, 7, False): "bf16",
    (4, 3, True): "fp8_e4m3",
    (5, 2, False): "fp8_e5m2",
}


_BITS = {torch.float32: (torch.int32, 23), torch.float64: (torch.int64, 52)}


@dataclass(frozen=True)
class FloatFormat(Format):
    """Sign, `exp_bits` exponent bits, `man_bits` stored mantissa bits. IEEE-style (`fn=False`):
    the all-ones exponent holds inf/NaN. `fn=True` (OCP FP8 E4M3 style): the all-ones exponent holds
    normal numbers, only S.1..1.1..1 is NaN, and there is no infinity. Overflow of a finite value
    gives inf (IEEE rules: toward_zero and floor keep +max), +-max (saturate) or NaN."""

    exp_bits: int
    man_bits: int
    bias: int | None = None
    fn: bool = False
    subnormals: bool = True
    rounding: str = "nearest_even"
    overflow: str | None = None
    trunc: int = 0
    seed: int = 0

    kind: ClassVar[str] = "float"

    def __post_init__(self) -> None:
        e, m = self.exp_bits, self.man_bits
        if not (2 <= e <= 11 and 0 <= m <= 52):
            raise FormatError(
                f"float widths e={e}, m={m} are invalid; need 2 <= e <= 11 and 0 <= m <= 52"
            )
        if self.bias is None:
            object.__setattr__(self, "bias", self.default_bias)
        object.__setattr__(self, "rounding", canonical_rounding(self.rounding))
        overflow = (
            self.overflow if self.overflow is not None else ("saturate" if self.fn else "inf")
        )
        object.__setattr__(self, "overflow", str(overflow).lower())
        if self.overflow not in FLOAT_OVERFLOW_MODES or (self.fn and self.overflow == "inf"):
            allowed = ("saturate", "nan") if self.fn else FLOAT_OVERFLOW_MODES
            raise FormatError(
                f"float overflow mode {overflow!r} is invalid for "
                f"e{e}m{m}{'fn' if self.fn else ''}; "
                f"expected one of {', '.join(allowed)}"
            )
        if not 0 <= self.trunc <= m:
            raise FormatError(
                f"float truncation trunc={self.trunc} is invalid; need 0 <= trunc <= m={m}"
            )
        if self.emin < -1022 or self.emin - m < -1074 or self.emax > 1023 or self.emax < self.emin:
            raise FormatError(
                f"float bias={self.bias} for e{e}m{m} gives exponents [{self.emin}, {self.emax}]; "
                f"need -1022 <= emin <= emax <= 1023 and emin - m >= -1074 (float64 range)"
            )

    # ---- geometry ---------------------------------------------------------------------------
    @property
    def default_bias(self) -> int:
        return 2 ** (self.exp_bits - 1) - 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - int(self.bias)  # type: ignore[arg-type]

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number."""
        top = 2**self.exp_bits - 1
        return top - int(self.bias) - (0 if self.fn and self.man_bits > 0 else 1)  # type: ignore[arg-type]

    @property
    def max_value(self) -> float:
        """Largest finite value."""
        m = self.man_bits
        frac_codes = 2**m - (2 if self.fn and m > 0 else 1)
        return (1.0 + frac_codes / 2.0**m) * 2.0**self.emax

    @property
    def min_normal(self) -> float:
        return 2.0**self.emin

    @property
    def min_positive(self) -> float:
        """Smallest positive value (the smallest subnormal when subnormals are on)."""
        return 2.0 ** (self.emin - self.man_bits) if self.subnormals else self.min_normal

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits - self.trunc

    @property
    def spec(self) -> str:
        key = (self.exp_bits, self.man_bits, self.fn)
        if key in _ALIASES and self.bias == self.default_bias:
            base, bias_opt = _ALIASES[key], []
        else:
            base = f"float:e{self.exp_bits}m{self.man_bits}{'fn' if self.fn else ''}"
            bias_opt = [("bias", self.bias, self.default_bias)]
        return with_options(
            base,
            [
                *bias_opt,
                ("subnormals", self.subnormals, True),
                ("round", self.rounding, "nearest_even"),
                ("overflow", self.overflow, "saturate" if self.fn else "inf"),
                ("trunc", self.trunc, 0),
                ("seed", self.seed if self.rounding == "stochastic" else 0, 0),
            ],
        )

    # ---- rounding ---------------------------------------------------------------------------
    def _overflowed(self, y: Tensor) -> Tensor:
        """What a finite value that rounded beyond max_value becomes."""
        big = torch.full_like(y, self.max_value).copysign(y)
        if self.overflow == "saturate":
            return big
        if self.overflow == "nan":
            return torch.full_like(y, float("nan"))
        inf = torch.full_like(y, float("inf")).copysign(y)
        if self.rounding == "toward_zero":
            return big
        if self.rounding == "floor":
            return torch.where(y > 0, big, inf)
        return inf

    def _nonfinite(self, x: Tensor) -> Tensor:
        """What +-inf and NaN inputs become."""
        if self.overflow == "inf":
            return x
        if self.overflow == "nan":
            return torch.full_like(x, float("nan"))
        return torch.where(torch.isnan(x), x, torch.full_like(x, self.max_value).copysign(x))

    def _to_grid(self, xf: Tensor, m: int, to_int: Callable[[Tensor], Tensor]) -> Tensor:
        """Round finite float32/float64 `xf` to `m` mantissa bits with exponents floored at emin:
        the significand, scaled to an integer range by exact power-of-two products, is rounded by
        `to_int`; the exponent is put back by integer addition to the float's exponent field."""
        ity, shift = _BITS[xf.dtype]
        frac, exp = torch.frexp(xf)  # xf = frac * 2^exp, |frac| in [0.5, 1)
        normal = exp > self.emin
        up = m - self.emin  # scale of the subnormal grid, split so each factor is representable
        s = torch.where(
            normal, frac * 2.0 ** (m + 1), xf * 2.0 ** (up // 2) * 2.0 ** (up - up // 2)
        )
        r = to_int(s)
        yn = ((r * 2.0 ** -(m + 1)).view(ity) + (exp.to(ity) << shift)).view(xf.dtype)
        ys = r * 2.0 ** (-up // 2) * 2.0 ** (-up - (-up // 2))
        return torch.where(normal, yn, ys)

    def work_dtype(self, dtype: torch.dtype) -> torch.dtype:
        """float32 when the input and the whole format fit in it exactly, else float64."""
        small = dtype in (torch.float32, torch.float16, torch.bfloat16)
        m, emin = self.man_bits, self.emin
        fits = m <= 23 and self.emax <= 127 and emin >= -126 and emin - m >= -149
        return torch.float32 if small and fits else torch.float64

    def round_values(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Round `x` to this format exactly (no gradient); the result is in `work_dtype`."""
        x = x.detach().to(self.work_dtype(x.dtype))
        finite = torch.isfinite(x)
        xf = torch.where(finite, x, torch.zeros_like(x))
        if not self.subnormals:  # flush to zero: every |x| below the smallest normal becomes +-0
            xf = torch.where(xf.abs() < self.min_normal, xf * 0.0, xf)
        if self.rounding == "stochastic" and generator is None:
            generator = make_generator(self.seed, x.device)
        y = self._to_grid(
            xf, self.man_bits, lambda s: round_to_integer(s, self.rounding, generator)
        )
        y = torch.where(y.abs() > self.max_value, self._overflowed(y), y)
        y = torch.where(finite, y, self._nonfinite(x))
        if self.trunc:  # zero the `trunc` mantissa LSBs of every finite value: round toward zero
            yf = torch.where(torch.isfinite(y), y, torch.zeros_like(y))
            t = self._to_grid(yf, self.man_bits - self.trunc, torch.trunc)
            y = torch.where(torch.isfinite(y), t, y)
        return y

    def _quantize(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        q = self.round_values(x, generator).to(x.dtype)
        return clipped_straight_through(x, q, -self.max_value, self.max_value)


@dataclass(frozen=True)
class Identity(Format):
    """`fp32`: the exact reference; quantize returns its input unchanged."""

    kind: ClassVar[str] = "identity"

    @property
    def bits(self) -> int:
        return 32

    @property
    def spec(self) -> str:
        return "fp32"

    def _quantize(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return x


_FLOAT_OPTS = (
    "[,bias=B][,subnormals=on|off][,round=nearest_even|toward_zero|stochastic|nearest_away|floor]"
    "[,overflow=inf|saturate|nan][,trunc=K][,seed=N]"
)


def _float_from_options(opts: Options, e: int, m: int, fn: bool) -> FloatFormat:
    fmt = FloatFormat(
        exp_bits=e,
        man_bits=m,
        bias=opts.get_int("bias", 2 ** (e - 1) - 1),
        fn=fn,
        subnormals=opts.get_bool("subnormals", True),
        rounding=opts.get_str("round", "nearest_even") or "nearest_even",
        overflow=opts.get_str("overflow", None),
        trunc=opts.get_int("trunc", 0),
        seed=opts.get_int("seed", 0),
    )
    opts.finish()
    return fmt


@register_format("float", "float:eEmM[fn]" + _FLOAT_OPTS)
def _build_float(match: re.Match[str], arg: str | None, opts: Options) -> Format:
    m = re.fullmatch(r"e(\d+)m(\d+)(fn)?", (arg or "").lower())
    if m is None:
        raise opts.bad_arg(arg, "eEmM or eEmMfn, e.g. e5m10 or e4m3fn")
    return _float_from_options(opts, int(m.group(1)), int(m.group(2)), m.group(3) is not None)


_NAMED = {
    "fp16": (5, 10, False),
    "bf16": (8, 7, False),
    "fp8_e4m3": (4, 3, True),
    "fp8_e4m3fn": (4, 3, True),
    "fp8_e5m2": (5, 2, False),
}


@register_format("|".join(_NAMED), "fp16 | bf16 | fp8_e4m3 | fp8_e5m2 (same options as float)")
def _build_named_float(match: re.Match[str], arg: str | None, opts: Options) -> Format:
    if arg is not None:
        raise opts.bad_arg(arg, f"no argument after {match.group(0)}")
    return _float_from_options(opts, *_NAMED[match.group(0)])


@register_format("fp32", "fp32 (identity)")
def _build_fp32(match: re.Match[str], arg: str | None, opts: Options) -> Format:
    if arg is not None:
        raise opts.bad_arg(arg, "no argument after fp32")
    opts.finish()
    return Identity()
