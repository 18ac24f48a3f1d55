"""Reference product-table kernels: slow, obviously correct, exact, memory-bounded.

Every operand is an *index* into the table (the operand's two's-complement bit pattern, see
`axdnn.arith.Multiplier`), and every kernel returns the exact integer sum over the reduction of
`table[a_index, b_index]` as int64. Faster backends must equal these bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from axdnn.kernels.geometry import ConvGeometry

# Upper bound on gathered elements held at once; bounds memory to about 8 bytes x this.
GATHER_CHUNK = 1 << 22


def linear(a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """out[m, o] = sum_k table[a[m, k], b[o, k]] for a: (M, K), b: (O, K)."""
    m, k = a_idx.shape
    o = b_idx.shape[0]
    out = torch.empty(m, o, dtype=torch.int64, device=a_idx.device)
    flat = table.to(torch.int64).reshape(-1)
    width = table.shape[1]
    rows_a = a_idx.long() * width
    b_long = b_idx.long()
    rows_per_chunk = max(1, GATHER_CHUNK // max(1, o * k))
    for start in range(0, m, rows_per_chunk):
        stop = min(m, start + rows_per_chunk)
        pos = rows_a[start:stop, None, :] + b_long[None, :, :]
        out[start:stop] = flat[pos].sum(dim=-1)
    return out


def matmul(a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Batched out[..., m, n] = sum_k table[a[..., m, k], b[..., k, n]]; batch dims broadcast."""
    batch = torch.broadcast_shapes(a_idx.shape[:-2], b_idx.shape[:-2])
    a = a_idx.expand(*batch, *a_idx.shape[-2:]).reshape(-1, *a_idx.shape[-2:])
    b = b_idx.expand(*batch, *b_idx.shape[-2:]).reshape(-1, *b_idx.shape[-2:])
    outs = [linear(a[i], b[i].transpose(0, 1), table) for i in range(a.shape[0])]
    out = torch.stack(outs) if outs else a.new_zeros(0, a.shape[1], b.shape[2], dtype=torch.int64)
    return out.reshape(*batch, a_idx.shape[-2], b_idx.shape[-1])


def unfold_indices(x_idx: torch.Tensor, geom: ConvGeometry, pad_index: int) -> torch.Tensor:
    """im2col of an index tensor (N, C, H, W) -> (N, C*kh*kw, L); padding takes `pad_index`."""
    ph, pw = geom.padding
    x = F.pad(x_idx.to(torch.float32), (pw, pw, ph, ph), value=float(pad_index))
    cols = F.unfold(x, geom.kernel, dilation=geom.dilation, stride=geom.stride)
    return cols.round().long()


def conv2d(
    x_idx: torch.Tensor,
    w_idx: torch.Tensor,
    table: torch.Tensor,
    geom: ConvGeometry,
    pad_index: int = 0,
) -> torch.Tensor:
    """out[n, o, i, j] = sum over the receptive field of table[x, w], per group; int64."""
    n = x_idx.shape[0]
    out_h, out_w = geom.output_size(x_idx.shape[-2:])
    cols = unfold_indices(x_idx, geom, pad_index)
    g = geom.groups
    cin_g = x_idx.shape[1] // g
    cout_g = w_idx.shape[0] // g
    kk = geom.kernel[0] * geom.kernel[1]
    outs = []
    for group in range(g):
        a = cols[:, group * cin_g * kk : (group + 1) * cin_g * kk, :]
        a = a.transpose(1, 2).reshape(-1, cin_g * kk)
        b = w_idx[group * cout_g : (group + 1) * cout_g].reshape(cout_g, -1)
        outs.append(linear(a, b, table).reshape(n, -1, cout_g))
    out = torch.cat(outs, dim=2).transpose(1, 2)
    return out.reshape(n, w_idx.shape[0], out_h, out_w)
