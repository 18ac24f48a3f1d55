"""Straight-through estimators shared by every format: the forward pass returns the quantized value,
the backward pass hands the upstream gradient to the input unchanged or masked to the representable
range (Bengio et al. 2013, arXiv:1308.3432; Courbariaux et al. 2016, arXiv:1602.02830)."""

from __future__ import annotations

import torch
from torch import Tensor


class _StraightThrough(torch.autograd.Function):
    """Forward: `q`. Backward: the upstream gradient to `x`, zeroed where `mask` is False."""

    @staticmethod
    def forward(ctx, x: Tensor, q: Tensor, mask: Tensor | None) -> Tensor:  # noqa: D102
        ctx.has_mask = mask is not None
        if mask is not None:
            ctx.save_for_backward(mask)
        return q.view_as(q)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # noqa: D102
        if ctx.has_mask:
            (mask,) = ctx.saved_tensors
            grad = torch.where(mask, grad, torch.zeros_like(grad))
        return grad, None, None


def straight_through(x: Tensor, q: Tensor, mask: Tensor | None = None) -> Tensor:
    """Return `q` in the forward pass and pass d/dq to `x` (masked by `mask`) in the backward pass.

    `q` must have the shape of `x` and carry no graph of its own; inf/NaN in `q` stay as they are
    (unlike the `x + (q - x).detach()` idiom, which turns inf into NaN)."""
    q = q.detach()
    if not (torch.is_grad_enabled() and x.requires_grad):
        return q
    if mask is not None:
        mask = mask.detach().to(torch.bool).expand_as(x)
    return _StraightThrough.apply(x, q, mask)


def clipped_straight_through(x: Tensor, q: Tensor, lo: float, hi: float) -> Tensor:
    """Straight-through estimator clipped to [lo, hi]: the gradient reaches `x` only where
    lo <= x <= hi, the standard STE for saturating quantizers (Hubara et al. 2017)."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return q.detach()
    return straight_through(x, q, (x >= lo) & (x <= hi))


def round_ste(x: Tensor) -> Tensor:
    """Round half to even in the forward pass, identity gradient in the backward pass."""
    return straight_through(x, torch.round(x.detach()))
