"""FPEC, fixed point with error compensation (Compensated-DNN, Jain et al., DAC 2018).

A value x is stored as computation bits, the fixed-point value q = Q(x) (`fxp:[s|u]I.F`, nearest
even, saturating), plus 2 + c compensation bits describing the quantization error r = x - q:

* ZEB, error-is-zero bit: set when |r| <= t * step (t = `skip`, a fraction of the step); the value
  is then skipped by the sparse compensation unit and its estimate is 0.
* EDB, error-direction bit: set when r < 0 (the stored value overshoots x).
* EMB, c = 0..2 error-magnitude bits: index i of |r| among 2^c equal bins splitting
  [t * step, step / 2]; the estimate is the bin centre, |e| = (t + (i + 1/2) w) * step with
  w = (1/2 - t) / 2^c. Magnitudes beyond step / 2 (saturated values) take the top bin.

The default threshold t = 1 / (2^(c+2) + 2) makes every decision nearest: the estimates are then
exactly the multiples k * step / (2^(c+1) + 1), k = 1..2^c, and |r| is rounded to the nearest of
{0, estimates}. For c = 0, 1, 2 the estimates are step/3; step/5, 2step/5; step/9 .. 4step/9.
A compensated MAC computes sum_k x_k w_k + sum_k (x_k e_w,k + w_k e_x,k): the first-order error of
the product of the stored values, added over non-skipped operands only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from axdnn.errors import FormatError
from axdnn.formats.base import Format, Options, register_format, with_options
from axdnn.formats.fixed import FixedPoint
from axdnn.formats.ste import clipped_straight_through

MAX_MAG_BITS = 2


def default_skip(mag_bits: int) -> float:
    """Skip threshold (fraction of the step) that makes the ZEB decision nearest: 1/(2^(c+2)+2)."""
    return 1.0 / (2 ** (mag_bits + 2) + 2)


@dataclass
class FpecTensor:
    """An encoded tensor: `value` is the fixed-point value q, `comp` the error estimate e
    (0 where the ZEB skips). The compensated hardware sees `value + comp` to first order."""

    value: Tensor
    comp: Tensor

    @property
    def effective(self) -> Tensor:
        return self.value + self.comp

    @property
    def compensated(self) -> Tensor:
        """Mask of values that take part in compensation (ZEB clear)."""
        return self.comp != 0


@dataclass
class FpecFields:
    """The stored bits of an FPEC tensor: fixed-point `codes`, `zero` (ZEB), `negative` (EDB)
    and `magnitude` (EMB index, 0..2^c-1); EDB and EMB are 0 where ZEB is set."""

    codes: Tensor
    zero: Tensor
    negative: Tensor
    magnitude: Tensor


@dataclass(frozen=True)
class Fpec(Format):
    """FPEC format `fpec:[s|u]I.F,c=C,skip=T`: I.F fixed-point computation bits plus ZEB, EDB
    and C magnitude bits (see the module docstring for the exact encoding)."""

    int_bits: int
    frac_bits: int
    mag_bits: int = 0
    skip: float | None = None
    signed: bool = True

    kind: ClassVar[str] = "fpec"

    def __post_init__(self) -> None:
        if not 0 <= self.mag_bits <= MAX_MAG_BITS:
            raise FormatError(
                f"FPEC magnitude bits c={self.mag_bits} is invalid; expected 0, 1 or 2"
            )
        self.fixed  # validates the widths  # noqa: B018
        if self.skip is not None:
            if not 0.0 <= float(self.skip) < 0.5:
                raise FormatError(
                    f"FPEC skip threshold {self.skip!r} is invalid; expected a fraction of the "
                    f"step in [0, 0.5)"
                )
            if float(self.skip) == default_skip(self.mag_bits):
                object.__setattr__(self, "skip", None)
            else:
                object.__setattr__(self, "skip", float(self.skip))

    @property
    def fixed(self) -> FixedPoint:
        """The computation bits as a fixed-point format (nearest even, saturating)."""
        return FixedPoint(self.int_bits, self.frac_bits, signed=self.signed)

    @property
    def threshold(self) -> float:
        """ZEB threshold t as a fraction of the step."""
        return default_skip(self.mag_bits) if self.skip is None else float(self.skip)

    @property
    def bin_width(self) -> float:
        """Width w of one magnitude bin, as a fraction of the step."""
        return (0.5 - self.threshold) / 2**self.mag_bits

    @property
    def levels(self) -> list[float]:
        """Error-estimate magnitudes |e| / step for EMB index 0..2^c-1."""
        t, w = self.threshold, self.bin_width
        return [t + (i + 0.5) * w for i in range(2**self.mag_bits)]

    @property
    def compute_bits(self) -> int:
        return self.int_bits + self.frac_bits

    @property
    def comp_bits(self) -> int:
        """ZEB + EDB + magnitude bits."""
        return 2 + self.mag_bits

    @property
    def bits(self) -> int:
        return self.compute_bits + self.comp_bits

    @property
    def spec(self) -> str:
        base = f"fpec:{'s' if self.signed else 'u'}{self.int_bits}.{self.frac_bits}"
        return with_options(base, [("c", self.mag_bits, 0), ("skip", self.skip, None)])

    # ---- encoding ---------------------------------------------------------------------------
    def _analyse(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """float64 codes, error r in steps (x/step - code), ZEB mask and EMB index (float64)."""
        x64 = x.detach().to(torch.float64)
        codes = self.fixed.codes_float(x64)
        r = x64 * 2.0**self.frac_bits - codes  # exact
        a = r.abs()
        zero = a <= self.threshold
        idx = torch.floor((a - self.threshold) / self.bin_width)
        idx = torch.clamp(idx, 0, 2**self.mag_bits - 1)
        return codes, r, zero, idx

    def encode_fields(self, x: Tensor) -> FpecFields:
        """The stored bits of `x`: fixed-point codes and the ZEB/EDB/EMB fields."""
        codes, r, zero, idx = self._analyse(x)
        if torch.isnan(codes).any():
            raise FormatError(f"format {self.spec!r}: NaN values cannot be FPEC-encoded")
        negative = (r < 0) & ~zero
        magnitude = torch.where(zero, torch.zeros_like(idx), idx).to(torch.int64)
        return FpecFields(codes.to(torch.int64), zero, negative, magnitude)

    def decode_fields(self, fields: FpecFields, dtype: torch.dtype = torch.float32) -> FpecTensor:
        """Values and error estimates of stored FPEC fields."""
        value = self.fixed.from_codes(fields.codes, torch.float64)
        mag = self.threshold + (fields.magnitude.to(torch.float64) + 0.5) * self.bin_width
        mag = mag * self.fixed.step
        comp = torch.where(fields.negative, -mag, mag)
        comp = torch.where(fields.zero, torch.zeros_like(comp), comp)
        return FpecTensor(value.to(dtype), comp.to(dtype))

    def encode(self, x: Tensor) -> FpecTensor:
        """Encode `x`: fixed-point value and error estimate (0 where skipped), in x's dtype."""
        return self.decode_fields(self.encode_fields(x), x.dtype)

    def _quantize(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        codes, r, zero, idx = self._analyse(x)
        e = self.threshold + (idx + 0.5) * self.bin_width
        e = torch.where(zero, torch.zeros_like(e), torch.copysign(e, r))
        q = ((codes + e) * self.fixed.step).to(x.dtype)  # NaN propagates through codes
        return clipped_straight_through(x, q, self.fixed.min_value, self.fixed.max_value)


# ---- compensated MACs ---------------------------------------------------------------------------


def compensation_term(xq: Tensor, ex: Tensor, wq: Tensor, ew: Tensor) -> Tensor:
    """sum_k xq[..., k] ew[k, n] + ex[..., k] wq[k, n] (matmul convention: w is K x N); error
    estimates are 0 for skipped values, so only compensated operands contribute."""
    return torch.matmul(xq, ew) + torch.matmul(ex, wq)


def compensated_matmul(xq: Tensor, ex: Tensor, wq: Tensor, ew: Tensor) -> Tensor:
    """xq @ wq plus the first-order compensation of both operands' quantization errors."""
    return torch.matmul(xq, wq) + compensation_term(xq, ex, wq, ew)


def compensated_linear(
    xq: Tensor, ex: Tensor, wq: Tensor, ew: Tensor, bias: Tensor | None = None
) -> Tensor:
    """F.linear convention (w is N x K): xq wq^T + xq ew^T + ex wq^T (+ bias)."""
    return F.linear(xq, wq, bias) + F.linear(xq, ew) + F.linear(ex, wq)


def conv2d_compensation_term(
    xq: Tensor,
    ex: Tensor,
    wq: Tensor,
    ew: Tensor,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Tensor:
    """The conv2d counterpart of `compensation_term`: conv(xq, ew) + conv(ex, wq)."""
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return F.conv2d(xq, ew, None, **kw) + F.conv2d(ex, wq, None, **kw)


def compensated_conv2d(
    xq: Tensor,
    ex: Tensor,
    wq: Tensor,
    ew: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
) -> Tensor:
    """conv2d of the stored values plus the first-order compensation term (+ bias)."""
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return F.conv2d(xq, wq, bias, **kw) + conv2d_compensation_term(xq, ex, wq, ew, **kw)


_FPEC_FORM = "fpec:[s|u]I.F[,c=0|1|2][,skip=T (fraction of the step, 0 <= T < 0.5)]"


@register_format("fpec", _FPEC_FORM)
def _build_fpec(match: re.Match[str], arg: str | None, opts: Options) -> Format:
    m = re.fullmatch(r"([su]?)(\d+)\.(\d+)", (arg or "").lower())
    if m is None:
        raise opts.bad_arg(arg, "[s|u]I.F computation bits, e.g. 8.4")
    fmt = Fpec(
        int_bits=int(m.group(2)),
        frac_bits=int(m.group(3)),
        mag_bits=opts.get_int("c", 0),
        skip=opts.get_float("skip", None),
        signed=m.group(1) != "u",
    )
    opts.finish()
    return fmt
