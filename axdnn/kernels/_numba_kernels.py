"""numba kernels of the compiled CPU gather backend (imported lazily by `gather_cpu`).

Each accumulator has the dtype of `acc_like` (int32, or int64 where int32 could overflow); slabs may
be int16 (table minus an offset the caller adds back) to halve their cache footprint.
"""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def conv_slab(  # pragma: no cover
    xp, slab, out, acc_like, c0, o0, kh, kw, sh, sw, dh, dw, rb, fuse9
):
    """out[n, g*og + o0 + q, y, x] += sum over block channels c and taps (i, j) of
    slab[g, (c*kh + i)*kw + j, xp[n, g*cg + c0 + c, y*sh + i*dh, x*sw + j*dw], q];
    one task per `rb` output rows of one image and group. Taps along a kernel row are added
    three (or two) at a time, or all nine of a 3x3 kernel when `fuse9` (narrow slabs, whose nine
    taps stay in cache), so each accumulator load/store serves several lookups."""
    n_img, chans, _, _ = xp.shape
    groups, kb, _, ob = slab.shape
    _, outs, ho, wo = out.shape
    cg = chans // groups
    og = outs // groups
    cb = kb // (kh * kw)
    row_blocks = (ho + rb - 1) // rb
    for task in prange(n_img * groups * row_blocks):
        n = task // (groups * row_blocks)
        g = (task // row_blocks) % groups
        y0 = (task % row_blocks) * rb
        y1 = min(ho, y0 + rb)
        acc = np.zeros(((y1 - y0) * wo, ob), acc_like.dtype)
        for c in range(cb):
            ch = g * cg + c0 + c
            if fuse9:
                _taps9(xp, slab, acc, n, g, ch, c * 9, y0, y1, wo, sh, sw, dh, dw)
                continue
            for i in range(kh):
                for j in range(0, kw, 3):
                    k = (c * kh + i) * kw + j
                    left = kw - j
                    for oy in range(y0, y1):
                        iy = oy * sh + i * dh
                        base = (oy - y0) * wo
                        for ox in range(wo):
                            ix = ox * sw + j * dw
                            a0 = xp[n, ch, iy, ix]
                            if left >= 3:
                                a1 = xp[n, ch, iy, ix + dw]
                                a2 = xp[n, ch, iy, ix + 2 * dw]
                                for q in range(ob):
                                    acc[base + ox, q] += (
                                        acc_like.dtype.type(slab[g, k, a0, q])
                                        + acc_like.dtype.type(slab[g, k + 1, a1, q])
                                        + acc_like.dtype.type(slab[g, k + 2, a2, q])
                                    )
                            elif left == 2:
                                a1 = xp[n, ch, iy, ix + dw]
                                for q in range(ob):
                                    acc[base + ox, q] += acc_like.dtype.type(
                                        slab[g, k, a0, q]
                                    ) + acc_like.dtype.type(slab[g, k + 1, a1, q])
                            else:
                                for q in range(ob):
                                    acc[base + ox, q] += slab[g, k, a0, q]
        for q in range(ob):
            for oy in range(y0, y1):
                for ox in range(wo):
                    out[n, g * og + o0 + q, oy, ox] += acc[(oy - y0) * wo + ox, q]


@njit(cache=True, inline="always")
def _taps9(xp, slab, acc, n, g, ch, k, y0, y1, wo, sh, sw, dh, dw):  # pragma: no cover
    """acc[p, q] += the nine taps of a 3x3 kernel for channel `ch` (slab rows k..k+8)."""
    ob = slab.shape[3]
    t = acc.dtype.type
    for oy in range(y0, y1):
        r0 = oy * sh
        r1 = r0 + dh
        r2 = r1 + dh
        base = (oy - y0) * wo
        for ox in range(wo):
            x0 = ox * sw
            x1 = x0 + dw
            x2 = x1 + dw
            a0, a1, a2 = xp[n, ch, r0, x0], xp[n, ch, r0, x1], xp[n, ch, r0, x2]
            a3, a4, a5 = xp[n, ch, r1, x0], xp[n, ch, r1, x1], xp[n, ch, r1, x2]
            a6, a7, a8 = xp[n, ch, r2, x0], xp[n, ch, r2, x1], xp[n, ch, r2, x2]
            for q in range(ob):
                acc[base + ox, q] += (
                    t(slab[g, k, a0, q])
                    + t(slab[g, k + 1, a1, q])
                    + t(slab[g, k + 2, a2, q])
                    + t(slab[g, k + 3, a3, q])
                    + t(slab[g, k + 4, a4, q])
                    + t(slab[g, k + 5, a5, q])
                    + t(slab[g, k + 6, a6, q])
                    + t(slab[g, k + 7, a7, q])
                    + t(slab[g, k + 8, a8, q])
                )


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


@njit(parallel=True, cache=True)
def lookup_pad(x, luts, ph, pw, pad_index, groups, c0, c1, out):  # pragma: no cover
    """out[n, (g*na + r)*cc + c, y, x] = luts[r, xpad[n, g*cg + c0 + c, y, x]] with the border
    of width (ph, pw) taking pad_index: the low-rank backend's operand transform in one pass."""
    n_img, chans, h, w = x.shape
    na = luts.shape[0]
    cg = chans // groups
    cc = c1 - c0
    hp = h + 2 * ph
    wp = w + 2 * pw
    for task in prange(n_img * groups * cc):
        n = task // (groups * cc)
        g = (task // cc) % groups
        c = task % cc
        ch = g * cg + c0 + c
        for r in range(na):
            dst = (g * na + r) * cc + c
            pv = luts[r, pad_index]
            for y in range(hp):
                iy = y - ph
                if iy < 0 or iy >= h:
                    for xx in range(wp):
                        out[n, dst, y, xx] = pv
                    continue
                for xx in range(pw):
                    out[n, dst, y, xx] = pv
                    out[n, dst, y, wp - 1 - xx] = pv
                for xx in range(w):
                    out[n, dst, y, xx + pw] = luts[r, x[n, ch, iy, xx]]


@njit(parallel=True, cache=True)
def row_sums(x, row, ph, pw, pad_index, groups, out):  # pragma: no cover
    """out[n, g, y, x] = sum over the group's channels of row[xpad[n, c, y, x]] (int64)."""
    n_img, chans, h, w = x.shape
    cg = chans // groups
    hp = h + 2 * ph
    wp = w + 2 * pw
    for task in prange(n_img * groups):
        n = task // groups
        g = task % groups
        pv = row[pad_index] * cg
        for y in range(hp):
            for xx in range(wp):
                out[n, g, y, xx] = pv
        for c in range(cg):
            for y in range(h):
                for xx in range(w):
                    out[n, g, y + ph, xx + pw] += row[x[n, g * cg + c, y, xx]] - row[pad_index]


@njit(parallel=True, cache=True)
def finish(res, scale, bias, rowmap, og, out, first):  # pragma: no cover
    """out = res*scale + bias[o] + rowmap[n, o // og] (first chunk) or out += res*scale."""
    n_img, outs, ho, wo = res.shape
    for task in prange(n_img * outs):
        n = task // outs
        o = task % outs
        g = o // og
        for y in range(ho):
            for xx in range(wo):
                v = np.int64(res[n, o, y, xx]) * scale
                if first:
                    v += bias[o]
                    if rowmap.shape[0] > 0:
                        v += rowmap[n, g, y, xx]
                else:
                    v += out[n, o, y, xx]
                out[n, o, y, xx] = v


@njit(parallel=True, cache=True)
def build_slab(tab, w, o0, k0, slab):  # pragma: no cover
    """slab[g, k, a, q] = tab[a, w[g, o0 + q, k0 + k]]: the weights' table columns, laid out so
    one activation index reads a contiguous row of output-channel values."""
    groups, kb, rows, ob = slab.shape
    for task in prange(groups * kb):
        g = task // kb
        k = task % kb
        cols = np.empty(ob, np.int64)
        for q in range(ob):
            cols[q] = w[g, o0 + q, k0 + k]
        dst = slab[g, k]
        for a in range(rows):
            row = tab[a]
            out = dst[a]
            for q in range(ob):
                out[q] = row[cols[q]]
