"""Device-agnostic gather backend in torch ops: exact for any table; the GPU path for general ones.

Same slab idea as `gather_cpu` (weights expanded to `slab[k][a, o] = T[a, w[o, k]]`), executed as
one `index_select` of output-channel rows per reduction step, all groups (and all batch elements of
a matmul) at once. Memory stays O(outputs) plus one slab step; nothing of size M x K x N is built.
On CPU it is slower than the compiled backend; on CUDA each step is one fused gather-add.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from axdnn.kernels.geometry import ConvGeometry


def _acc_dtype(table: torch.Tensor, reduction: int) -> torch.dtype:
    """int32 when no partial sum can overflow it, else int64."""
    maxabs = int(table.abs().max()) if table.numel() else 0
    return torch.int32 if maxabs * reduction < 1 << 31 else torch.int64


def conv2d(
    x_idx: torch.Tensor,
    w_idx: torch.Tensor,
    table: torch.Tensor,
    geom: ConvGeometry,
    pad_index: int = 0,
) -> torch.Tensor:
    """Exact int64 table convolution (see kernels.reference.conv2d) by per-tap row gathers."""
    device = x_idx.device
    n, c, _, _ = x_idx.shape
    o = w_idx.shape[0]
    g = geom.groups
    cg, og = c // g, o // g
    kh, kw = geom.kernel
    (ph, pw), (sh, sw), (dh, dw) = geom.padding, geom.stride, geom.dilation
    ho, wo = geom.output_size(x_idx.shape[-2:])
    rows = table.shape[0]
    t = table.to(device)
    dtype = _acc_dtype(t, cg * kh * kw)
    xp = F.pad(x_idx.long(), (pw, pw, ph, ph), value=int(pad_index))
    xg = xp.view(n, g, cg, *xp.shape[-2:])
    w = w_idx.to(device).long().view(g, og, cg, kh, kw)
    base = (torch.arange(g, device=device) * rows).view(1, g, 1, 1)
    acc = torch.zeros(n * g * ho * wo, og, dtype=dtype, device=device)
    for ci in range(cg):
        slabs = t.to(dtype)[:, w[:, :, ci]]  # (rows, g, og, kh, kw)
        for i in range(kh):
            for j in range(kw):
                slab = slabs[..., i, j].permute(1, 0, 2).reshape(g * rows, og)
                a = xg[
                    :,
                    :,
                    ci,
                    i * dh : i * dh + sh * (ho - 1) + 1 : sh,
                    j * dw : j * dw + sw * (wo - 1) + 1 : sw,
                ]
                acc += slab.index_select(0, (a + base).reshape(-1))
    out = acc.view(n, g, ho, wo, og).permute(0, 1, 4, 2, 3)
    return out.reshape(n, o, ho, wo).to(torch.int64)


def matmul(a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Exact int64 batched table matmul with broadcasting batch dims, by per-step row gathers."""
    device = a_idx.device
    batch = torch.broadcast_shapes(a_idx.shape[:-2], b_idx.shape[:-2])
    m, k = a_idx.shape[-2:]
    nn = b_idx.shape[-1]
    a = a_idx.long().expand(*batch, m, k).reshape(-1, m, k)
    b = b_idx.to(device).long().expand(*batch, k, nn).reshape(-1, k, nn)
    nb = a.shape[0]
    rows = table.shape[0]
    t = table.to(device)
    dtype = _acc_dtype(t, k)
    tt = t.to(dtype)
    base = (torch.arange(nb, device=device) * rows).view(nb, 1)
    acc = torch.zeros(nb * m, nn, dtype=dtype, device=device)
    for step in range(k):
        slab = tt[:, b[:, step]].permute(1, 0, 2).reshape(nb * rows, nn)  # (nb*rows, nn)
        acc += slab.index_select(0, (a[:, :, step] + base).reshape(-1))
    return acc.view(*batch, m, nn).to(torch.int64)


def linear(a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Exact int64 out[m, o] = sum_k table[a[m, k], b[o, k]] by per-step row gathers."""
    return matmul(a_idx, b_idx.transpose(0, 1), table)
