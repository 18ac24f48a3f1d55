"""`approx_matmul`: a batched matrix product of two activations through a multiplier's table, for
operations that are not layers (capsule routing, attention scores).

Both operands are quantized per tensor into the multiplier's operand domains (a: asymmetric, like
layer activations; b: symmetric when signed, like layer weights), from their own min/max unless
ranges are given; the integer MAC with zero points is exact on every kernel backend; the result is
dequantized with the product of the scales. With the exact table this equals quantized matmul bit
for bit. The gradient is straight-through: that of the matmul of the dequantized operands, zero
for elements outside the quantization range.
"""

from __future__ import annotations

import math

import torch

from axdnn.arith import Multiplier, get_multiplier
from axdnn.kernels import lut_matmul
from axdnn.nn.quant import QuantScheme, code_index, code_range, qparams, quantize_codes


def _scheme(bits: int, signed: bool, symmetric: bool) -> QuantScheme:
    return QuantScheme(bits, signed, symmetric=symmetric and signed)


def _quantize(t: torch.Tensor, scheme: QuantScheme, value_range):
    lo, hi = value_range if value_range is not None else (t.min(), t.max())
    scale, zero = qparams(torch.as_tensor(lo), torch.as_tensor(hi), scheme)
    codes = quantize_codes(t, scale, zero, scheme)
    qmin, qmax = code_range(scheme)
    inside = (t / scale + zero >= qmin - 0.5) & (t / scale + zero <= qmax + 0.5)
    return codes, scale, zero, inside


class _ApproxMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, multiplier: Multiplier, backend: str, a_range, b_range):
        sa = _scheme(multiplier.a_bits, multiplier.a_signed, symmetric=False)
        sb = _scheme(multiplier.b_bits, multiplier.b_signed, symmetric=True)
        qa, scale_a, za, in_a = _quantize(a.detach().float(), sa, a_range)
        qb, scale_b, zb, in_b = _quantize(b.detach().float(), sb, b_range)
        table = multiplier.table
        raw = lut_matmul(
            code_index(qa, sa.bits), code_index(qb, sb.bits), table.to(a.device), backend
        )
        # the zero-point terms of axdnn.kernels.affine, exact in int64
        acc = raw - zb * (qa - za).sum(dim=-1, keepdim=True) - za * qb.sum(dim=-2, keepdim=True)
        y = acc.to(torch.float32) * (scale_a * scale_b)
        a_deq = ((qa - za) * scale_a).to(a.dtype)
        b_deq = ((qb - zb) * scale_b).to(b.dtype)
        ctx.save_for_backward(a_deq, b_deq, in_a, in_b)
        return y

    @staticmethod
    def backward(ctx, grad):
        a_deq, b_deq, in_a, in_b = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = _unbroadcast(grad @ b_deq.transpose(-1, -2), a_deq.shape) * in_a
        if ctx.needs_input_grad[1]:
            gb = _unbroadcast(a_deq.transpose(-1, -2) @ grad, b_deq.shape) * in_b
        return ga, gb, None, None, None, None


def _unbroadcast(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a gradient over the batch dimensions its operand was broadcast along."""
    while grad.dim() > len(shape):
        grad = grad.sum(dim=0)
    for i, size in enumerate(shape):
        if size == 1 and grad.shape[i] != 1:
            grad = grad.sum(dim=i, keepdim=True)
    return grad


def _fold_broadcast(a: torch.Tensor, b: torch.Tensor):
    """(a', b', restore): batch dims only `a` has (b broadcasts along them) folded into a's rows,
    those only `b` has into b's columns, so many tiny products become a few wide ones; the sums
    are the same, so the result is bit-identical. None when there is nothing to fold."""
    rank = max(a.dim(), b.dim()) - 2
    a = a.reshape((1,) * (rank + 2 - a.dim()) + a.shape)
    b = b.reshape((1,) * (rank + 2 - b.dim()) + b.shape)
    both = [i for i in range(rank) if a.shape[i] == b.shape[i] and a.shape[i] > 1]
    rows = [i for i in range(rank) if a.shape[i] > 1 and b.shape[i] == 1]
    cols = [i for i in range(rank) if a.shape[i] == 1 and b.shape[i] > 1]
    if not rows and not cols:
        return None
    ones = [i for i in range(rank) if i not in both + rows + cols]
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    keep = [a.shape[i] for i in both]
    row_sizes, col_sizes = [a.shape[i] for i in rows], [b.shape[i] for i in cols]
    a2 = a.permute(*both, *rows, *cols, *ones, rank, rank + 1)
    a2 = a2.reshape(*keep, math.prod(row_sizes) * m, k)
    b2 = b.permute(*both, *rows, *ones, rank, *cols, rank + 1)
    b2 = b2.reshape(*keep, k, math.prod(col_sizes) * n)

    def restore(out: torch.Tensor) -> torch.Tensor:
        out = out.reshape(*keep, *row_sizes, m, *col_sizes, n)
        placed = [*both, *rows, rank, *cols, rank + 1]  # where each dim of `out` belongs
        order = [placed.index(i) for i in range(rank + 2) if i in placed]
        sizes = [max(a.shape[i], b.shape[i]) for i in range(rank)]
        return out.permute(order).reshape(*sizes, m, n)

    return a2, b2, restore


def approx_matmul(
    a: torch.Tensor,
    b: torch.Tensor,
    multiplier: Multiplier | str,
    backend: str = "auto",
    a_range: tuple[float, float] | None = None,
    b_range: tuple[float, float] | None = None,
) -> torch.Tensor:
    """a @ b over (..., M, K) x (..., K, N), batch dims broadcasting, every product through the
    multiplier's table (a: its first operand, b: its second); see the module docstring."""
    m = get_multiplier(multiplier) if isinstance(multiplier, str) else multiplier
    if a.dim() >= 2 and b.dim() >= 2:
        folded = _fold_broadcast(a, b)
        if folded is not None:
            a2, b2, restore = folded
            return restore(_ApproxMatmul.apply(a2, b2, m, backend, a_range, b_range))
    return _ApproxMatmul.apply(a, b, m, backend, a_range, b_range)
