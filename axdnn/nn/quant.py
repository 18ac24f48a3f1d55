"""Integer quantization in a multiplier's operand domain: schemes, parameters and codes.

A real value x is stored as an integer code q = clamp(round(x / scale) + zero_point, qmin, qmax),
so x ~ scale * (q - zero_point). The product table is applied to the codes' bit patterns
(`index`), which is what an integer datapath with that multiplier would see.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from axdnn.errors import ConfigError
from axdnn.kernels.affine import index_of, quantize

OBSERVERS = ("minmax", "percentile", "mse")


@dataclass(frozen=True)
class QuantScheme:
    """How one operand is quantized: width and signedness of its codes, symmetry, granularity."""

    bits: int = 8
    signed: bool = False
    symmetric: bool = False
    per_channel: bool = False
    observer: str = "minmax"

    def __post_init__(self) -> None:
        if not 2 <= self.bits <= 16:
            raise ConfigError(f"quantizer width must be 2..16 bits, got {self.bits}")
        if self.observer not in OBSERVERS:
            raise ConfigError(f"unknown observer {self.observer!r}; expected one of {OBSERVERS}")

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


def qparams(
    lo: torch.Tensor, hi: torch.Tensor, scheme: QuantScheme
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point covering [lo, hi] (widened to include 0); float32 and int64 tensors.

    Symmetric signed schemes use the narrow range [-qmax, qmax] so that zero is exact and the
    range is balanced; symmetric unsigned schemes map [0, hi] onto [0, qmax].
    """
    lo = torch.minimum(lo.float(), torch.zeros_like(lo, dtype=torch.float32))
    hi = torch.maximum(hi.float(), torch.zeros_like(hi, dtype=torch.float32))
    tiny = torch.finfo(torch.float32).tiny
    if scheme.symmetric:
        bound = hi if not scheme.signed else torch.maximum(-lo, hi)
        scale = (bound / scheme.qmax).clamp(min=tiny)
        zero = torch.zeros_like(scale, dtype=torch.int64)
        return scale, zero
    scale = ((hi - lo) / (scheme.qmax - scheme.qmin)).clamp(min=tiny)
    zero = (scheme.qmin - torch.round(lo / scale)).clamp(scheme.qmin, scheme.qmax).long()
    return scale, zero


def code_range(scheme: QuantScheme) -> tuple[int, int]:
    """Smallest and largest code a scheme produces (symmetric signed: the narrow range)."""
    qmin = -scheme.qmax if scheme.symmetric and scheme.signed else scheme.qmin
    return qmin, scheme.qmax


def quantize_codes(
    x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, scheme: QuantScheme
) -> torch.Tensor:
    """Integer codes of x (as int64), rounding half to even and saturating."""
    return quantize(x, scale, zero, *code_range(scheme))


def code_index(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Table index of integer codes: their two's-complement bit pattern in `bits` bits."""
    return index_of(codes, bits)


def channel_view(t: torch.Tensor, ndim: int, axis: int = 0) -> torch.Tensor:
    """Reshape a per-channel vector so it broadcasts along `axis` of an `ndim`-d tensor."""
    shape = [1] * ndim
    shape[axis] = -1
    return t.reshape(shape)
