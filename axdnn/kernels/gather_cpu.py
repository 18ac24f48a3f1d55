"""Compiled CPU gather backend (numba, multithreaded): exact for any table.

Instead of one scalar table lookup per MAC, the weights are expanded once per call into a *slab*
`slab[k, a, o] = T[a, w[o, k]]` (reduction position k, activation index a, output channel o), so
each activation read adds a contiguous row of output-channel contributions: a vectorised integer
add instead of a gather. The slab is built by a compiled pass (no torch fancy indexing), and the
taps of a kernel row (all nine of a 3x3 kernel when their slab blocks fit in cache) are added
together before touching the accumulator, which cuts the accumulator load/store traffic that
bounds this loop by 3-9x (AVX2 EPYC, 1 thread: about 2 -> 5.5 G lookups/s on ResNet-20 layers).
Work is blocked (output channels x input channels) so a slab block stays cache-sized and int32
accumulators cannot overflow; each thread owns output rows of one image and group, so grouped
and depthwise convolutions need no Python loop over groups. Small matmuls, where building a slab
would cost more than the lookups, use a direct gather loop.

Compiled on first use with `numba.njit(parallel=True, cache=True)`; `available()` is False when
numba is not installed, and the dispatcher then never picks this backend.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from axdnn.errors import ConfigError
from axdnn.kernels.geometry import ConvGeometry

# Target size of one slab block in bytes (about the L2 cache).
SLAB_BYTES = 1 << 22
# Output pixels one thread accumulates at a time (whole rows).
PIXELS_PER_TASK = 64
# Widest output-channel block (row of a slab).
MAX_OUT_BLOCK = 64
# Largest slab footprint (bytes) of the nine taps of a 3x3 kernel for them to be added in one
# pass (about a quarter of the L2 cache; measured faster for 16 output channels, slower for 64).
FUSE9_BYTES = 1 << 17
# Why this backend cannot run where numba is absent (error messages name it).
MISSING = "it needs the numba package (pip install 'axdnn[fast]', or pip install numba)"


@functools.cache
def available() -> bool:
    """True when numba can be imported (checked once, without importing it)."""
    return importlib.util.find_spec("numba") is not None


def kernels():
    """The numba kernels (compiled on first use, then loaded from numba's on-disk cache)."""
    if not available():
        raise ConfigError(f"kernel backend 'numba' is not installed: {MISSING}")
    from axdnn.kernels import _numba_kernels

    return _numba_kernels


def _index_array(x: torch.Tensor) -> np.ndarray:
    """Indices as a contiguous numpy array of the narrowest fitting dtype (uint8 for <= 8 bits)."""
    return np.ascontiguousarray(x.to(torch.uint8).numpy())


@dataclass(frozen=True)
class SlabPlan:
    """How slabs are stored: `slab = table - offset` in `dtype`, summed in `acc` dtype, `block`
    input channels (or reduction steps) per slab so sums fit `acc` and slabs stay cache-sized."""

    offset: int
    dtype: type
    acc: type
    block: int


def slab_plan(table: torch.Tensor, per_out: int, area: int, out_block: int) -> SlabPlan:
    """The narrowest exact slab storage and accumulator for this table and block shape."""
    lo, hi = int(table.min()), int(table.max())
    if hi - lo < 1 << 16:
        offset, dtype, width = lo + (1 << 15), np.int16, 2
    else:
        offset, dtype, width = 0, np.int32, 4
    maxabs = max(abs(lo - offset), abs(hi - offset))
    by_size = max(1, SLAB_BYTES // (width * table.shape[0] * out_block * area))
    if maxabs * area >= 1 << 31:
        return SlabPlan(offset, dtype, np.int64, max(1, min(per_out, by_size)))
    by_overflow = max(1, ((1 << 31) - 1) // max(1, maxabs * area))
    return SlabPlan(offset, dtype, np.int32, max(1, min(per_out, by_size, by_overflow)))


def slab_row_bytes(table: torch.Tensor, out_block: int, plan: SlabPlan) -> int:
    """Bytes of one tap's slab block (all activation indices x `out_block` channels)."""
    return table.shape[0] * out_block * np.dtype(plan.dtype).itemsize


def _slab(values: torch.Tensor, plan: SlabPlan) -> np.ndarray:
    return np.ascontiguousarray((values.numpy() - plan.offset).astype(plan.dtype))


def conv2d(
    x_idx: torch.Tensor,
    w_idx: torch.Tensor,
    table: torch.Tensor,
    geom: ConvGeometry,
    pad_index: int = 0,
) -> torch.Tensor:
    """Exact int64 table convolution (see kernels.reference.conv2d), compiled and multithreaded."""
    kern = kernels()
    n, c, _, _ = x_idx.shape
    o = w_idx.shape[0]
    g = geom.groups
    cg, og = c // g, o // g
    kh, kw = geom.kernel
    ph, pw = geom.padding
    out_hw = geom.output_size(x_idx.shape[-2:])
    xp = _index_array(F.pad(x_idx.cpu().to(torch.int16), (pw, pw, ph, ph), value=int(pad_index)))
    out = np.zeros((n, o, *out_hw), np.int64)
    ob = min(og, MAX_OUT_BLOCK)
    t = table.cpu()
    plan = slab_plan(t, cg, kh * kw, ob)
    acc_like = np.zeros(1, plan.acc)
    rows = max(1, min(out_hw[0], PIXELS_PER_TASK // max(1, out_hw[1])))
    w = np.ascontiguousarray(w_idx.cpu().to(torch.int32).view(g, og, cg * kh * kw).numpy())
    tab = _slab(t, plan)
    fuse9 = (kh, kw) == (3, 3) and 9 * slab_row_bytes(t, ob, plan) <= FUSE9_BYTES
    for o0 in range(0, og, ob):
        o1 = min(og, o0 + ob)
        for c0 in range(0, cg, plan.block):
            c1 = min(cg, c0 + plan.block)
            slab = np.empty((g, (c1 - c0) * kh * kw, t.shape[0], o1 - o0), plan.dtype)
            kern.build_slab(tab, w, o0, c0 * kh * kw, slab)
            kern.conv_slab(
                xp, slab, out, acc_like, c0, o0, kh, kw, *geom.stride, *geom.dilation, rows, fuse9
            )
    if plan.offset:
        out += plan.offset * cg * kh * kw
    return torch.from_numpy(out).to(x_idx.device)


def _matmul2d(a: torch.Tensor, b: torch.Tensor, table: torch.Tensor) -> np.ndarray:
    """out[m, n] = sum_k table[a[m, k], b[k, n]] for one (M, K) x (K, N) pair."""
    kern = kernels()
    m, k = a.shape
    nn = b.shape[1]
    rows_a, rows_b = table.shape
    if m * rows_b < 4 * k * rows_a and nn * rows_a < 4 * k * rows_b and min(m, nn) < rows_a:
        out = np.zeros((m, nn), np.int64)
        t64 = np.ascontiguousarray(table.numpy().astype(np.int64))
        kern.direct(_index_array(a), _index_array(b), t64, out)
        return out
    if nn > m:  # slab over the smaller side's operand, rows over the larger
        return _matmul2d(b.transpose(0, 1), a.transpose(0, 1), table.transpose(0, 1)).T
    out = np.zeros((m, nn), np.int64)
    nb = min(nn, MAX_OUT_BLOCK)
    plan = slab_plan(table, k, 1, nb)
    acc_like = np.zeros(1, plan.acc)
    xa = _index_array(a)
    bl = b.long()
    for n0 in range(0, nn, nb):
        for k0 in range(0, k, plan.block):
            slab = _slab(table[:, bl[k0 : k0 + plan.block, n0 : n0 + nb]].permute(1, 0, 2), plan)
            kern.rows_slab(xa, slab, out, acc_like, k0, n0)
    if plan.offset:
        out += plan.offset * k
    return out


def matmul(a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Exact int64 batched table matmul with broadcasting batch dims (see kernels.reference)."""
    batch = torch.broadcast_shapes(a_idx.shape[:-2], b_idx.shape[:-2])
    a = a_idx.cpu().expand(*batch, *a_idx.shape[-2:]).reshape(-1, *a_idx.shape[-2:])
    b = b_idx.cpu().expand(*batch, *b_idx.shape[-2:]).reshape(-1, *b_idx.shape[-2:])
    t = table.cpu()
    out = np.zeros((a.shape[0], a.shape[1], b.shape[2]), np.int64)
    for i in range(a.shape[0]):
        out[i] = _matmul2d(a[i], b[i], t)
    return torch.from_numpy(out).reshape(*batch, a.shape[1], b.shape[2]).to(a_idx.device)


def linear(a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Exact int64 out[m, o] = sum_k table[a[m, k], b[o, k]], compiled and multithreaded."""
    return matmul(a_idx, b_idx.transpose(0, 1), table)
