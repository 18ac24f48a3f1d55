"""numba kernels of the compiled CPU gather backend (imported lazily by `gather_cpu`).

Each accumulator has the dtype of `acc_like` (int32, or int64 where int32 could overflow); slabs may
be int16 (table minus an offset the caller adds back) to halve their cache footprint.
"""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def conv_slab(xp, slab, out, acc_like, c0, o0, kh, kw, sh, sw, dh, dw):  # pragma: no cover
    """out[n, g*og + o0 + q, y, x] += sum over block channels c and taps (i, j) of
    slab[g, (c*kh + i)*kw + j, xp[n, g*cg + c0 + c, y*sh + i*dh, x*sw + j*dw], q]."""
    n_img, chans, _, _ = xp.shape
    groups, kb, _, ob = slab.shape
    _, outs, ho, wo = out.shape
    cg = chans // groups
    og = outs // groups
    cb = kb // (kh * kw)
    for task in prange(n_img * groups * ho):
        n = task // (groups * ho)
        g = (task // ho) % groups
        oy = task % ho
        acc = np.zeros((wo, ob), acc_like.dtype)
        for c in range(cb):
            ch = g * cg + c0 + c
            for i in range(kh):
                iy = oy * sh + i * dh
                for j in range(kw):
                    k = (c * kh + i) * kw + j
                    for ox in range(wo):
                        a = xp[n, ch, iy, ox * sw + j * dw]
                        for q in range(ob):
                            acc[ox, q] += slab[g, k, a, q]
        for q in range(ob):
            for ox in range(wo):
                out[n, g * og + o0 + q, oy, ox] += acc[ox, q]


@njit(parallel=True, cache=True)
def rows_slab(x, slab, out, acc_like, k0, n0):  # pragma: no cover
    """out[m, n0 + q] += sum_k slab[k, x[m, k0 + k], q] over the slab's block of k."""
    m_rows = x.shape[0]
    kb, _, nb = slab.shape
    for m in prange(m_rows):
        acc = np.zeros(nb, acc_like.dtype)
        for k in range(kb):
            a = x[m, k0 + k]
            for q in range(nb):
                acc[q] += slab[k, a, q]
        for q in range(nb):
            out[m, n0 + q] += acc[q]


@njit(parallel=True, cache=True)
def direct(a, b, table, out):  # pragma: no cover
    """out[m, q] = sum_k table[a[m, k], b[k, q]]: one scalar lookup per product."""
    m_rows, k_len = a.shape
    n_cols = b.shape[1]
    for m in prange(m_rows):
        for q in range(n_cols):
            total = 0
            for k in range(k_len):
                total += table[a[m, k], b[k, q]]
            out[m, q] = total
