"""Integer MACs with zero points, and activation quantization in primitive terms.

DESIGN.md's integer MAC: with activation codes x_k (zero point zx), weight codes w_k (zero point
zw[o] per output channel) and table indices ix_k, iw_k (the codes' bit patterns),

    acc[o] = sum_k T[ix_k, iw_k] - zw[o] * sum_k (x_k - zx) - zx * sum_k w_k

which with the exact table is sum_k (x_k - zx)(w_k - zw[o]): ordinary quantized inference. Padding
feeds the code zx (real zero) into the multiplier. A backend either computes `acc` itself (the
native one folds the terms into its accumulators) or returns raw sums that `conv_correction` /
`linear_correction` complete. Float layers then take `dequantize(saturate(acc))`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from axdnn.kernels.geometry import ConvGeometry

FLOAT32_EXACT = 1 << 24


@dataclass(frozen=True)
class ZeroPoints:
    """Zero points of an integer MAC: one activation code `x`, one weight code per output channel
    `w` (int64), and whether table indices read as signed (two's-complement) codes. `w_sums`
    (optional) is sum_k w_k per output channel, when the caller keeps it with its weights."""

    x: int
    w: torch.Tensor
    a_signed: bool = False
    b_signed: bool = False
    w_sums: torch.Tensor | None = None


@dataclass(frozen=True)
class ActQuant:
    """Activation quantizer: code = clamp(round_half_even(x / scale) + zero, qmin, qmax), with
    `scale` a float32 scalar tensor; the table index is the code's `bits`-bit pattern."""

    scale: torch.Tensor
    zero: int
    qmin: int
    qmax: int
    bits: int


def quantize(x: torch.Tensor, scale, zero, qmin: int, qmax: int) -> torch.Tensor:
    """Integer codes of x (int64): round half to even in float32, add the zero point, saturate."""
    return (torch.round(x / scale) + zero).clamp(qmin, qmax).long()


def index_of(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Table index of integer codes: their two's-complement bit pattern in `bits` bits."""
    return codes & ((1 << bits) - 1)


def code_of(index: torch.Tensor, size: int, signed: bool) -> torch.Tensor:
    """Integer code of table indices into a dimension of `size` entries (int64)."""
    codes = index.long()
    return torch.where(codes >= size // 2, codes - size, codes) if signed else codes


def pad_index(zero: ZeroPoints, rows: int) -> int:
    """The table row padding reads: the index of the activation zero point."""
    return zero.x & (rows - 1)


def weight_code_sums(w_idx: torch.Tensor, cols: int, zero: ZeroPoints) -> torch.Tensor:
    """sum_k w_k per output channel (int64, shape (O,)): `zero.w_sums`, or computed."""
    if zero.w_sums is not None:
        return zero.w_sums
    return code_of(w_idx, cols, zero.b_signed).reshape(w_idx.shape[0], -1).sum(dim=1)


def _box_sums(centred: torch.Tensor, geom: ConvGeometry) -> torch.Tensor:
    """sum over each output's receptive field (all channels of its group) of an integer map;
    float32 when no partial sum can pass 2^24, else float64 (both exact)."""
    g = geom.groups
    cin_g = centred.shape[1] // g
    span = int(centred.abs().max()) if centred.numel() else 0
    dtype = (
        torch.float32
        if span * cin_g * geom.kernel[0] * geom.kernel[1] < FLOAT32_EXACT
        else (torch.float64)
    )
    ones = torch.ones(g, cin_g, *geom.kernel, dtype=dtype, device=centred.device)
    sums = F.conv2d(centred.to(dtype), ones, None, geom.stride, geom.padding, geom.dilation, g)
    return sums.round().long()


def conv_correction(
    x_idx: torch.Tensor,
    w_idx: torch.Tensor,
    size: tuple[int, int],
    geom: ConvGeometry,
    zero: ZeroPoints,
) -> torch.Tensor:
    """-zw[o] * sum_k (x_k - zx) - zx * sum_k w_k for every conv output (int64, N x O x H x W);
    `size` is the table's (rows, cols)."""
    centred = code_of(x_idx, size[0], zero.a_signed) - zero.x
    sums = _box_sums(centred, geom)  # (N, groups, H, W)
    per_group = w_idx.shape[0] // geom.groups
    sums = sums.repeat_interleave(per_group, dim=1)
    zw = zero.w.to(sums.device).reshape(1, -1, 1, 1)
    sw = weight_code_sums(w_idx, size[1], zero).to(sums.device).reshape(1, -1, 1, 1)
    return -zw * sums - zero.x * sw


def linear_correction(
    a_idx: torch.Tensor, b_idx: torch.Tensor, size: tuple[int, int], zero: ZeroPoints
) -> torch.Tensor:
    """The same for out[m, o] = sum_k T[a[m, k], b[o, k]] (int64, M x O)."""
    sums = (code_of(a_idx, size[0], zero.a_signed) - zero.x).sum(dim=1, keepdim=True)
    sw = weight_code_sums(b_idx, size[1], zero).to(sums.device).reshape(1, -1)
    return -zero.w.to(sums.device).reshape(1, -1) * sums - zero.x * sw


def saturate(acc: torch.Tensor, bits: int | None) -> torch.Tensor:
    """Clamp accumulators to a signed `bits`-bit range (None: unbounded)."""
    if bits is None:
        return acc
    bound = 1 << (bits - 1)
    return acc.clamp(-bound, bound - 1)


def dequantize(acc: torch.Tensor, scale: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """float32(acc) * scale[o] along `channel_dim` (the float rounding every backend matches)."""
    shape = [1] * acc.dim()
    shape[channel_dim] = -1
    return acc.to(torch.float32) * scale.to(torch.float32).reshape(shape)
