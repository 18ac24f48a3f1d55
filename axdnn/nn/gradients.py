"""Gradients through a product table.

`ste`: straight-through; the backward pass is that of the exact product of the dequantized
operands. `table`: the table-difference gradient of Meng et al. (DATE 2025, "Gradient
approximation of approximate multipliers for high-accuracy deep neural network retraining"):
dM/da and dM/db are smoothed central differences of the table along each operand (in value
order), so the gradient sees the approximate multiplier's real slope. To keep backward cheap we
factor each difference table with a truncated SVD, G ~ U V^T of rank r (singular values below
float rounding of the largest dropped: drum's tables have rank 1); backward is then one ordinary
convolution/matmul per operand, r + 1 (input) or r (weight) channel blocks wide, of transformed
operands. With the exact table G_a = b exactly (rank 1), so the table gradient reduces to the
straight-through one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

GRADIENTS = ("ste", "table")
DEFAULT_RANK = 8
DEFAULT_SMOOTHING = 2
# singular values at most this fraction of the largest contribute below float32 rounding
# (float32 factors carry 6e-8 relative error); the SVD's noise on exactly low-rank tables is ~1e-15
RANK_RTOL = 1e-9


@dataclass(frozen=True)
class TableGradient:
    """Factors of dM/da ~ ua @ va.T and dM/db ~ ub @ vb.T, rows indexed by table index."""

    ua: torch.Tensor
    va: torch.Tensor
    ub: torch.Tensor
    vb: torch.Tensor


def _value_order(bits: int, signed: bool) -> torch.Tensor:
    """Table indices sorted by operand value (two's complement when signed)."""
    idx = torch.arange(1 << bits)
    if not signed:
        return idx
    return torch.cat([idx[1 << (bits - 1) :], idx[: 1 << (bits - 1)]])


def smoothed_difference(table: torch.Tensor, smoothing: int) -> torch.Tensor:
    """d table / d row by central differences (one-sided at the ends), box-smoothed over
    2*smoothing+1 neighbouring rows; rows must be in value order."""
    t = table.double()
    diff = torch.empty_like(t)
    diff[1:-1] = (t[2:] - t[:-2]) / 2
    diff[0] = t[1] - t[0]
    diff[-1] = t[-1] - t[-2]
    if smoothing <= 0:
        return diff
    width = 2 * smoothing + 1
    padded = F.pad(diff.T[:, None, :], (smoothing, smoothing), mode="replicate")
    kernel = torch.full((1, 1, width), 1.0 / width, dtype=torch.float64)
    return F.conv1d(padded, kernel)[:, 0, :].T


def _factor(g: torch.Tensor, rank: int, rtol: float) -> tuple[torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    significant = int((s > rtol * s[0]).sum()) if s.numel() else 0
    r = max(1, min(rank, significant))
    root = s[:r].sqrt()
    return (u[:, :r] * root).float(), (vh[:r].T * root).float()


def table_gradient(
    table: torch.Tensor,
    a_signed: bool,
    b_signed: bool,
    rank: int = DEFAULT_RANK,
    smoothing: int = DEFAULT_SMOOTHING,
    *,
    rtol: float = RANK_RTOL,
) -> TableGradient:
    """Low-rank factors of the smoothed table differences along both operands: at most `rank`
    terms, none whose singular value is `rtol` of the largest or less."""
    a_bits = table.shape[0].bit_length() - 1
    b_bits = table.shape[1].bit_length() - 1
    oa, ob = _value_order(a_bits, a_signed), _value_order(b_bits, b_signed)
    ordered = table[oa][:, ob]
    ga = torch.empty(ordered.shape, dtype=torch.float64)
    gb = torch.empty(ordered.shape, dtype=torch.float64)
    ga[oa[:, None], ob[None, :]] = smoothed_difference(ordered, smoothing)
    gb[oa[:, None], ob[None, :]] = smoothed_difference(ordered.T, smoothing).T
    ua, va = _factor(ga, rank, rtol)
    ub, vb = _factor(gb, rank, rtol)
    return TableGradient(ua, va, ub, vb)


def _groups(op) -> int:
    geom = getattr(op, "geom", None)
    return 1 if geom is None else geom.groups


def _blocks(parts: list[torch.Tensor], groups: int) -> torch.Tensor:
    """Stack same-shape (N, C, ...) tensors along channels, group-major: (N, G*len*C/G, ...)."""
    n, c = parts[0].shape[:2]
    stacked = torch.stack([p.reshape(n, groups, c // groups, *p.shape[2:]) for p in parts], 2)
    return stacked.reshape(n, len(parts) * c, *parts[0].shape[2:])


def _unblock(t: torch.Tensor, groups: int, count: int) -> torch.Tensor:
    """Inverse of `_blocks`: (N, G*count*Cg, ...) -> (count, N, G*Cg, ...)."""
    n, c = t.shape[:2]
    split = t.reshape(n, groups, count, c // (groups * count), *t.shape[2:]).movedim(2, 0)
    return split.reshape(count, n, c // count, *t.shape[2:])


def table_input_grad(op, grad, x_idx, w_idx, w_scale, w_zero, tg: TableGradient, x_shape):
    """dL/dx = sum_r ua[x, r] * back(s_w * va[w, r]) - back(s_w * z_w), the back-projections of
    all terms in one convolution (or matmul) r + 1 channel blocks wide. `w_scale`, `w_zero`
    broadcast against the weights; `x_idx`, `w_idx` are int64 table indices."""
    groups = _groups(op)
    parts = [(w_scale * w_zero).expand(w_idx.shape)]
    parts += [w_scale * tg.va[:, r][w_idx] for r in range(tg.va.shape[1])]
    wide = (x_shape[0], len(parts) * x_shape[1], *x_shape[2:])
    back = _unblock(op.grad_input(wide, torch.cat(parts, 1), grad), groups, len(parts))
    coeff = tg.ua.T[:, x_idx]  # (r, *x_shape)
    return (coeff * back[1:]).sum(0) - back[0]


def table_weight_grad(op, grad, x_idx, w_idx, x_scale, x_zero: int, tg: TableGradient, w_shape):
    """dL/dw = s_x * (sum_r vb[w, r] * corr(ub[x, r], grad) - z_x * sum grad), the correlations
    of all terms in one convolution (or matmul); `x_idx` is padded with the zero point's index."""
    groups = _groups(op)
    parts = [tg.ub[:, r][x_idx] for r in range(tg.ub.shape[1])]
    wide = (w_shape[0], len(parts) * w_shape[1], *w_shape[2:])
    corr = op.grad_weight(_blocks(parts, groups), wide, grad, padded=True)
    corr = corr.reshape(w_shape[0], len(parts), *w_shape[1:]).movedim(1, 0)
    total = grad.sum(dim=[d for d in range(grad.dim()) if d != 1])
    ones = total.reshape(-1, *[1] * (len(w_shape) - 1))
    return ((tg.vb.T[:, w_idx] * corr).sum(0) - x_zero * ones) * x_scale
