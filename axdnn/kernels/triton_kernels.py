"""Triton backend: the product-table MAC on the GPU, and on CPU tensors in Triton's interpreter.

Two passes, like the native CPU kernel: a quantize pass (float32 input -> table indices, round half
to even in IEEE float32) and one MAC kernel per layer. The MAC kernel is a tiled direct
convolution (a linear map is a 1x1 convolution, a batched matmul a grouped one): each program
owns BM output pixels x BN output channels of one group, walks the reduction in BK steps, reads
the activation indices straight from the input with padding and dilation applied in its address
arithmetic (no im2col in memory), gathers the BM x BN x BK table products T[x, w] (the table is
read through the GPU's caches: an 8x8 table is 256 KiB of int32, read-only and shared by every
program) and sums them in int32 registers when no sum can overflow, else in int64. The epilogue
adds the zero-point terms of `axdnn.kernels.affine` (- zw[o] * sum_k (x_k - zx) - zx * sum_k w_k),
saturates to the accumulator width and writes float32(acc) * scale[o], or the int64 sums.

Triton is an optional extra (`pip install 'axdnn[gpu]'`); without it `available()` is False and
the dispatcher never picks this backend. `auto` uses it for CUDA tensors; on CPU tensors it runs
only when forced with TRITON_INTERPRET=1 (the exactness tests), never under `auto`.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

from axdnn.errors import ConfigError
from axdnn.kernels.affine import ActQuant, ZeroPoints, pad_index, quantize, weight_code_sums
from axdnn.kernels.geometry import ConvGeometry

# Why this backend cannot run where triton is absent (error messages name it).
MISSING = "it needs the triton package (pip install 'axdnn[gpu]', or pip install triton)"
# Tile sizes (pixels, channels, reduction steps), capped by the problem's own sizes; the GPU
# values are a starting point (untuned: no GPU was available when this was written).
TILES = {"gpu": (32, 32, 8), "interpret": (32, 32, 16)}
QUANTIZE_BLOCK = 1024
MAX_GRID_GROUPS = 65535  # CUDA's limit on the third grid dimension: more groups, more launches
_INT32_MAX = (1 << 31) - 1


@functools.cache
def available() -> bool:
    """True when triton can be imported (checked once, without importing it)."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Whether Triton kernels run in its interpreter (TRITON_INTERPRET=1): CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def supports(table: torch.Tensor, device: torch.device) -> bool:
    """CUDA tensors (CPU tensors under TRITON_INTERPRET=1) where triton is installed."""
    if not available():
        return False
    return device.type == "cuda" or (device.type == "cpu" and interpreting())


def _kernels():
    if not available():
        raise ConfigError(f"kernel backend 'triton' is not installed: {MISSING}")
    from axdnn.kernels import _triton_kernels

    return _triton_kernels


def _block(size: int, cap: int) -> int:
    """The power of two >= size (at least 2), capped at `cap`."""
    return max(2, min(cap, 1 << max(0, size - 1).bit_length()))


def _table(table: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, int]:
    """The table as the kernel reads it (int32 where it fits, else int64) and its max |value|."""
    maxabs = int(table.abs().max()) if table.numel() else 0
    dtype = torch.int32 if maxabs <= _INT32_MAX else torch.int64
    return table.to(device=device, dtype=dtype).contiguous(), maxabs


def _index_tensor(t: torch.Tensor) -> torch.Tensor:
    """Indices in their own narrow dtype (uint8 stays uint8), contiguous."""
    return t.contiguous() if t.dtype in (torch.uint8, torch.int32, torch.int64) else t.long()


def _mac(
    x, shape, w, table, *, geom: ConvGeometry, pad: int, zero, scale, acc_bits
) -> torch.Tensor:
    """Launch the MAC on indices `x` of `shape` (N, C, H, W) and weights `w` (O, K)."""
    kern = _kernels()
    n, c, h, wd = shape
    o, k = w.shape
    g = geom.groups
    ho, wo = geom.output_size((h, wd))
    t, maxabs = _table(table, x.device)
    acc64 = t.dtype == torch.int64 or maxabs * k > _INT32_MAX
    out = torch.empty((n, o, ho, wo), dtype=torch.int64 if scale is None else torch.float32,
                      device=x.device)  # fmt: skip
    m, og = n * ho * wo, o // g
    if out.numel() == 0:
        return out
    zw = sw = scale32 = out  # placeholders the kernel never reads (constexpr branches off)
    if zero is not None:
        zw = zero.w.to(device=x.device, dtype=torch.int64).contiguous()
        sw = weight_code_sums(w, table.shape[1], zero).to(x.device, torch.int64).contiguous()
    if scale is not None:
        scale32 = scale.to(device=x.device, dtype=torch.float32).reshape(-1).contiguous()
    bound = 1 << (acc_bits - 1) if acc_bits is not None else 0
    cap_m, cap_n, cap_k = TILES["interpret" if interpreting() else "gpu"]
    bm, bn, bk = _block(m, cap_m), _block(og, cap_n), _block(k, cap_k)
    (kh, kw), (sh, sw_), (ph, pw), (dh, dw) = geom.kernel, geom.stride, geom.padding, geom.dilation
    for g0 in range(0, g, MAX_GRID_GROUPS):
        grid = (kern.cdiv(m, bm), kern.cdiv(og, bn), min(MAX_GRID_GROUPS, g - g0))
        kern.kernel("mac")[grid](
            x, w, t, zw, sw, scale32, out,
            m, o, og, k, c, h, wd, ho * wo, wo, kh * kw, kw, sh, sw_, ph, pw, dh, dw, c // g,
            table.shape[1], table.shape[0], pad, zero.x if zero is not None else 0, -bound,
            bound - 1, g0,
            A_SIGNED=bool(zero is not None and zero.a_signed), ZERO=zero is not None,
            SATURATE=acc_bits is not None, FLOAT_OUT=scale is not None, ACC64=acc64,
            BM=bm, BN=bn, BK=bk,
        )  # fmt: skip
    return out


def quantize_indices(x: torch.Tensor, act: ActQuant) -> torch.Tensor:
    """Table indices of quantized x (uint8 for up to 8 bits, else int64), same shape: one Triton
    pass for float32 input, torch ops for other dtypes (both as `affine.quantize`)."""
    dtype = torch.uint8 if act.bits <= 8 else torch.int64
    if x.dtype != torch.float32:
        codes = quantize(x, act.scale.to(x.device), act.zero, act.qmin, act.qmax)
        return (codes & ((1 << act.bits) - 1)).to(dtype)
    kern = _kernels()
    xf = x.detach().contiguous()
    out = torch.empty(xf.shape, dtype=dtype, device=x.device)
    n = xf.numel()
    if n:
        kern.kernel("quantize")[(kern.cdiv(n, QUANTIZE_BLOCK),)](
            xf, out, n, float(act.scale), float(act.zero), float(act.qmin), float(act.qmax),
            (1 << act.bits) - 1, BLOCK=QUANTIZE_BLOCK,
        )  # fmt: skip
    return out


def _weights2d(w_idx: torch.Tensor) -> torch.Tensor:
    return _index_tensor(w_idx.reshape(w_idx.shape[0], -1))


def _pad_for(zero: ZeroPoints | None, rows: int, given: int) -> int:
    return pad_index(zero, rows) if zero is not None else int(given)


def conv2d(x_idx, w_idx, table, geom: ConvGeometry, pad_index: int = 0, zero=None):
    """Exact int64 table convolution (kernels.reference.conv2d), or the zero-point MAC."""
    pad = _pad_for(zero, table.shape[0], pad_index)
    x = _index_tensor(x_idx)
    return _mac(x, x.shape, _weights2d(w_idx), table, geom=geom, pad=pad, zero=zero, scale=None,
                acc_bits=None)  # fmt: skip


_LINEAR = ConvGeometry.of(1)


def linear(a_idx, b_idx, table, zero=None):
    """Exact int64 out[m, o] = sum_k table[a[m, k], b[o, k]], or the zero-point MAC."""
    m, k = a_idx.shape
    out = _mac(_index_tensor(a_idx), (m, k, 1, 1), _weights2d(b_idx), table, geom=_LINEAR, pad=0,
               zero=zero, scale=None, acc_bits=None)  # fmt: skip
    return out.reshape(m, -1)


def matmul(a_idx, b_idx, table):
    """Exact int64 batched table matmul with broadcasting batch dims: one grouped launch (each
    matrix of the batch is one group of a 1x1 convolution)."""
    batch = torch.broadcast_shapes(a_idx.shape[:-2], b_idx.shape[:-2])
    m, k = a_idx.shape[-2:]
    n = b_idx.shape[-1]
    a = a_idx.expand(*batch, m, k).reshape(-1, m, k)
    b = b_idx.expand(*batch, k, n).reshape(-1, k, n)
    nb = a.shape[0]
    if nb == 0:
        return torch.zeros((*batch, m, n), dtype=torch.int64, device=a_idx.device)
    x = _index_tensor(a.permute(1, 0, 2).reshape(m, nb * k))
    w = _index_tensor(b.transpose(1, 2).reshape(nb * n, k))
    geom = ConvGeometry.of(1, groups=nb)
    out = _mac(x, (m, nb * k, 1, 1), w, table, geom=geom, pad=0, zero=None, scale=None,
               acc_bits=None)  # fmt: skip
    return out.reshape(m, nb, n).permute(1, 0, 2).reshape(*batch, m, n)


def conv2d_float(x, act: ActQuant, w_idx, table, geom, zero: ZeroPoints, scale, acc_bits=None):
    """float32(saturate(zero-point MAC of quantize(x))) * scale[o]: the quantize pass and one MAC
    launch (see the module docstring)."""
    codes = quantize_indices(x, act)
    pad = pad_index(zero, table.shape[0])
    return _mac(codes, codes.shape, _weights2d(w_idx), table, geom=geom, pad=pad, zero=zero,
                scale=scale, acc_bits=acc_bits)  # fmt: skip


def linear_float(x, act: ActQuant, w_idx, table, zero: ZeroPoints, scale, acc_bits=None):
    """The same for a linear map over the last dimension of a 2-D input."""
    m, k = x.shape
    codes = quantize_indices(x, act)
    out = _mac(codes, (m, k, 1, 1), _weights2d(w_idx), table, geom=_LINEAR, pad=0, zero=zero,
               scale=scale, acc_bits=acc_bits)  # fmt: skip
    return out.reshape(m, -1)
