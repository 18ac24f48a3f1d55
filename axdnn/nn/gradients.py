"""Gradients through a product table.

`ste`: straight-through; the backward pass is that of the exact product of the dequantized
operands. `table`: the table-difference gradient of Meng et al. (DATE 2025, "Gradient
approximation of approximate multipliers for high-accuracy deep neural network retraining"):
dM/da and dM/db are smoothed central differences of the table along each operand (in value
order), so the gradient sees the approximate multiplier's real slope. To keep backward cheap we
factor each difference table with a truncated SVD, G ~ U V^T of rank r; backward is then r ordinary
convolutions/matmuls of transformed operands. With the exact table G_a = b exactly (rank 1), so
the table gradient reduces to the straight-through one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

GRADIENTS = ("ste", "table")
DEFAULT_RANK = 8
DEFAULT_SMOOTHING = 2


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


def _factor(g: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    r = min(rank, s.numel())
    root = s[:r].sqrt()
    return (u[:, :r] * root).float(), (vh[:r].T * root).float()


def table_gradient(
    table: torch.Tensor,
    a_signed: bool,
    b_signed: bool,
    rank: int = DEFAULT_RANK,
    smoothing: int = DEFAULT_SMOOTHING,
) -> TableGradient:
    """Low-rank factors of the smoothed table differences along both operands."""
    a_bits = table.shape[0].bit_length() - 1
    b_bits = table.shape[1].bit_length() - 1
    oa, ob = _value_order(a_bits, a_signed), _value_order(b_bits, b_signed)
    ordered = table[oa][:, ob]
    ga = torch.empty(ordered.shape, dtype=torch.float64)
    gb = torch.empty(ordered.shape, dtype=torch.float64)
    ga[oa[:, None], ob[None, :]] = smoothed_difference(ordered, smoothing)
    gb[oa[:, None], ob[None, :]] = smoothed_difference(ordered.T, smoothing).T
    ua, va = _factor(ga, rank)
    ub, vb = _factor(gb, rank)
    return TableGradient(ua, va, ub, vb)
