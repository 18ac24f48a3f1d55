"""Bit-level views of values: float32/float16 bit patterns and N-bit integer codes.

Integer codes use a symmetric scale: `intN` stores round(x / s) in two's complement with
s = max|x| / (2**(N-1) - 1); `uintN` stores round(x / s) with s = max|x| / (2**N - 1) and clamps
negatives to 0. The scale is given, or taken per sample from the site tensor (see `BitFlip`).
"""

from __future__ import annotations

import re

import torch

from axdnn.errors import InjectionError

FLOAT_FORMATS = {
    "float32": (torch.float32, torch.int32, 32),
    "float16": (torch.float16, torch.int16, 16),
}
_INT = re.compile(r"^(u?)int(\d+)$")
BIT_OPS = ("flip", "set", "clear")


def format_width(fmt: str) -> int:
    """Number of bits of a value in `fmt` (float32, float16, intN or uintN with N = 2..32)."""
    if fmt in FLOAT_FORMATS:
        return FLOAT_FORMATS[fmt][2]
    match = _INT.match(fmt)
    if match and 2 <= int(match.group(2)) <= 32:
        return int(match.group(2))
    raise InjectionError(
        f"unknown bit format {fmt!r}; expected float32, float16, intN or uintN (N = 2..32)"
    )


def int_qmax(fmt: str) -> int:
    """Largest code of an integer format."""
    width = format_width(fmt)
    return (1 << width) - 1 if fmt.startswith("u") else (1 << (width - 1)) - 1


def _wrap(v: torch.Tensor, width: int) -> torch.Tensor:
    """Reinterpret the low `width` bits of int64 values as a signed two's-complement number."""
    v = v & ((1 << width) - 1)
    return torch.where(v >= (1 << (width - 1)), v - (1 << width), v)


def _combine(v: torch.Tensor, mask: torch.Tensor, op: str) -> torch.Tensor:
    if op == "flip":
        return v ^ mask
    if op == "set":
        return v | mask
    if op == "clear":
        return v & ~mask
    raise InjectionError(f"unknown bit operation {op!r}; expected one of {BIT_OPS}")


def apply_bits(
    values: torch.Tensor, fmt: str, mask: torch.Tensor, op: str, scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Flip, set or clear the bits in `mask` (int64, bit i = 1 << i) of each value's
    representation in `fmt` and return the float32 value read back."""
    width = format_width(fmt)
    if fmt in FLOAT_FORMATS:
        ftype, itype, _ = FLOAT_FORMATS[fmt]
        bits = values.to(ftype).view(itype).to(torch.int64)
        out = _wrap(_combine(bits, mask, op), width).to(itype).view(ftype)
        return out.to(torch.float32)
    if scale is None:
        raise InjectionError(f"integer bit format {fmt!r} needs a scale")
    unsigned = fmt.startswith("u")
    qmax = int_qmax(fmt)
    codes = torch.round(values / scale).clamp(0 if unsigned else -qmax - 1, qmax).to(torch.int64)
    raw = _combine(codes & ((1 << width) - 1), mask, op) & ((1 << width) - 1)
    new = raw if unsigned else _wrap(raw, width)
    return (new.to(torch.float32) * scale).to(torch.float32)


def int_scale(region_max_abs: torch.Tensor, fmt: str) -> torch.Tensor:
    """Code step of an integer format covering +-max|x| (never zero)."""
    return (region_max_abs / int_qmax(fmt)).clamp(min=torch.finfo(torch.float32).tiny)
