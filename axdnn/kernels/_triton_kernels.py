"""The Triton kernels behind `axdnn.kernels.triton_kernels` (imported only where triton is).

Kernels are written undecorated and wrapped by `triton.jit` on first use, per mode: with
TRITON_INTERPRET=1 set at that point they run in Triton's interpreter on CPU tensors (how the
exactness tests run without a GPU), otherwise they compile for the GPU.
"""

from __future__ import annotations

import functools

import triton
import triton.language as tl
from triton import knobs

# Round half to even in float32 for |v| < 2^22: adding and removing 1.5 * 2^23 leaves an integer
# (IEEE rounding of the sum, no reassociation: Triton does not use fast math). Larger values are
# beyond every code range and get clamped anyway.
_ROUND_LIMIT = tl.constexpr(4194304.0)
_ROUND_MAGIC = tl.constexpr(12582912.0)


def _quantize(
    x_ptr, out_ptr, n, scale, zero, qmin, qmax, mask, BLOCK: tl.constexpr
):  # pragma: no cover - traced by Triton
    """Table indices of float32 x: (clamp(round_half_even(x / scale) + zero) & mask)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < n
    x = tl.load(x_ptr + offs, mask=ok, other=0.0)
    v = tl.math.div_rn(x, scale)  # IEEE division, as torch's x / scale (`/` is approximate)
    r = tl.where(tl.abs(v) < _ROUND_LIMIT, (v + _ROUND_MAGIC) - _ROUND_MAGIC, v)
    q = tl.minimum(tl.maximum(r + zero, qmin), qmax)
    tl.store(out_ptr + offs, (q.to(tl.int32) & mask).to(out_ptr.dtype.element_ty), mask=ok)


def _mac(
    x_ptr, w_ptr, t_ptr, zw_ptr, sw_ptr, scale_ptr, out_ptr,
    M, NO, OG, K, C, H, W, HWO, WO, KHW, KW, SH, SW, PH, PW, DH, DW, CG,
    COLS, ROWS, PAD, ZX, LO, HI, G0,
    A_SIGNED: tl.constexpr, ZERO: tl.constexpr, SATURATE: tl.constexpr,
    FLOAT_OUT: tl.constexpr, ACC64: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):  # fmt: skip  # pragma: no cover - traced by Triton
    """One (BM pixels x BN channels) tile of group G0 + program_id(2): the direct convolution (no
    im2col in memory) of table lookups T[x, w], then the zero-point terms, saturation and the
    float32 scale (FLOAT_OUT) or int64 sums; see `triton_kernels` for the arithmetic."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    g = G0 + tl.program_id(2)
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_n = pid_n * BN + tl.arange(0, BN)
    m_ok = offs_m < M
    n_ok = offs_n < OG
    img = offs_m // HWO
    pix = offs_m % HWO
    iy0 = (pix // WO) * SH - PH
    ix0 = (pix % WO) * SW - PW
    x_base = img.to(tl.int64) * C * H * W + (g * CG).to(tl.int64) * H * W
    o = g * OG + offs_n
    w_base = o.to(tl.int64) * K
    if ACC64:
        acc = tl.zeros((BM, BN), dtype=tl.int64)
    else:
        acc = tl.zeros((BM, BN), dtype=tl.int32)
    sx = tl.zeros((BM,), dtype=tl.int64)
    for k0 in range(0, K, BK):
        offs_k = k0 + tl.arange(0, BK)
        k_ok = offs_k < K
        c = offs_k // KHW
        r = offs_k % KHW
        iy = iy0[:, None] + ((r // KW) * DH)[None, :]
        ix = ix0[:, None] + ((r % KW) * DW)[None, :]
        inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W) & m_ok[:, None] & k_ok[None, :]
        a_off = x_base[:, None] + (c * H * W)[None, :] + iy * W + ix
        a = tl.load(x_ptr + a_off, mask=inside, other=PAD).to(tl.int32)
        b_mask = n_ok[:, None] & k_ok[None, :]
        b = tl.load(w_ptr + w_base[:, None] + offs_k[None, :], mask=b_mask, other=0).to(tl.int32)
        idx = a[:, None, :] * COLS + b[None, :, :]
        vals = tl.load(t_ptr + idx, mask=k_ok[None, None, :], other=0)
        if ACC64:
            vals = vals.to(tl.int64)
        acc += tl.sum(vals, axis=2)
        if ZERO:
            code = a.to(tl.int64)
            if A_SIGNED:
                code = tl.where(code >= ROWS // 2, code - ROWS, code)
            sx += tl.sum(tl.where(inside, code - ZX, 0), axis=1)
    res = acc.to(tl.int64)
    if ZERO:
        zw = tl.load(zw_ptr + o, mask=n_ok, other=0)
        sw = tl.load(sw_ptr + o, mask=n_ok, other=0)
        res = res - zw[None, :] * sx[:, None] - ZX * sw[None, :]
    if SATURATE:
        res = tl.minimum(tl.maximum(res, LO), HI)
    out_off = img.to(tl.int64)[:, None] * NO * HWO + o.to(tl.int64)[None, :] * HWO + pix[:, None]
    out_mask = m_ok[:, None] & n_ok[None, :]
    if FLOAT_OUT:
        s = tl.load(scale_ptr + o, mask=n_ok, other=0.0)
        tl.store(out_ptr + out_off, res.to(tl.float32) * s[None, :], mask=out_mask)
    else:
        tl.store(out_ptr + out_off, res, mask=out_mask)


@functools.cache
def _jitted(name: str, interpret: bool):
    return triton.jit(globals()[name])


def kernel(name: str):
    """The `triton.jit` kernel `name` ("mac" or "quantize") for the current mode."""
    return _jitted("_" + name, bool(knobs.runtime.interpret))


def cdiv(a: int, b: int) -> int:
    return triton.cdiv(a, b)
