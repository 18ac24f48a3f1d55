"""Functional MAC operations written as matrix products, so one product kernel runs them all.

`decompose(op, func, args, kwargs, mm)` computes a functional call (matmul, mm, bmm, addmm,
baddbmm, F.linear, F.conv1d/conv2d, two-operand einsum, scaled-dot-product attention) with every
multiply-accumulate going through `mm(a, b, k)`: a broadcasting `a @ b` over (..., M, K) x (..., K,
N) where `a` plays the multiplier's first operand (the activation) and `b` its second (the weight
where there is one); `k` numbers the products of one call (attention has two). With `mm` =
`torch.matmul` each decomposition equals the torch function up to float summation order.
An op it cannot write this way raises `Unsupported` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Product = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]
PRODUCT_OPS = ("matmul", "mm", "bmm", "addmm", "baddbmm", "linear", "conv1d", "conv2d", "einsum")
SUPPORTED_OPS = (*PRODUCT_OPS, "sdpa")


class Unsupported(Exception):
    """This call cannot be written as matrix products (the message says why)."""


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def matmul(a: torch.Tensor, b: torch.Tensor, mm: Product, k: int = 0) -> torch.Tensor:
    """torch.matmul semantics (1-D operands included) through `mm`."""
    if a.dim() == 0 or b.dim() == 0:
        raise Unsupported("matmul of a scalar is an elementwise product, not a MAC")
    out = mm(a.unsqueeze(0) if a.dim() == 1 else a, b.unsqueeze(-1) if b.dim() == 1 else b, k)
    if b.dim() == 1:
        out = out.squeeze(-1)
    if a.dim() == 1:
        out = out.squeeze(-2)
    return out


def _scaled_sum(base: torch.Tensor, product: torch.Tensor, beta: Any, alpha: Any) -> torch.Tensor:
    product = product if alpha == 1 else alpha * product
    return product + (base if beta == 1 else beta * base) if beta != 0 else product


def linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, mm: Product):
    out = matmul(x, w.t(), mm)
    return out if bias is None else out + bias


def _pairs(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * n


def _same_padding(kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
    if any(t % 2 for t in totals):
        raise Unsupported("padding='same' with an even receptive field pads unevenly")
    return tuple(t // 2 for t in totals)


def conv2d(x, w, bias, stride, padding, dilation, groups, mm: Product) -> torch.Tensor:
    """F.conv2d as im2col products: columns (the activation) times the grouped weights."""
    kernel = tuple(int(s) for s in w.shape[2:])
    stride, dilation = _pairs(stride, 2), _pairs(dilation, 2)
    if isinstance(padding, str):
        padding = (0, 0) if padding == "valid" else _same_padding(kernel, dilation)
    padding = _pairs(padding, 2)
    batched = x.dim() == 4
    x = x if batched else x.unsqueeze(0)
    n, _, h, wd = x.shape
    out_h = (h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (wd + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    cols = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)
    g, out_ch = int(groups), int(w.shape[0])
    cols = cols.reshape(n, g, -1, cols.shape[-1]).transpose(-1, -2)  # (N, G, L, C/G*kh*kw)
    weights = w.reshape(g, out_ch // g, -1).transpose(-1, -2)  # (G, C/G*kh*kw, O/G)
    out = mm(cols, weights, 0).transpose(-1, -2).reshape(n, out_ch, out_h, out_w)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out if batched else out.squeeze(0)


def conv1d(x, w, bias, stride, padding, dilation, groups, mm: Product) -> torch.Tensor:
    """F.conv1d as a conv2d of height 1."""
    if isinstance(padding, str):
        padding = (
            padding if padding == "valid" else _same_padding((w.shape[-1],), _pairs(dilation, 1))
        )
    pad = padding if isinstance(padding, str) else (0, _pairs(padding, 1)[0])
    args = ((1, _pairs(stride, 1)[0]), pad, (1, _pairs(dilation, 1)[0]), groups)
    out = conv2d(x.unsqueeze(-2), w.unsqueeze(-2), bias, *args, mm)
    return out.squeeze(-2)


def _einsum_operands(args: tuple) -> tuple[str, list[torch.Tensor]]:
    equation, operands = str(args[0]).replace(" ", ""), list(args[1:])
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    if len(operands) != 2:
        raise Unsupported(f"einsum with {len(operands)} operands (two-operand products only)")
    return equation, operands


def _expand_ellipsis(sub: str, ndim: int, fresh: str) -> str:
    if "..." not in sub:
        return sub
    head, tail = sub.split("...")
    count = ndim - len(head) - len(tail)
    return head + fresh[len(fresh) - count :] + tail if count else head + tail


def einsum(args: tuple, mm: Product) -> torch.Tensor:
    """A two-operand einsum as one batched product: indices are sorted into batch (both operands
    and output), contracted (both, not output), left-only and right-only; indices in one operand
    only and not in the output are summed first."""
    equation, (a, b) = _einsum_operands(args)
    if "->" not in equation:
        raise Unsupported("einsum without an explicit output ('->')")
    inputs, out = equation.split("->")
    left, right = inputs.split(",")
    fresh = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in equation)
    ell = max(a.dim() - len(left.replace("...", "")), b.dim() - len(right.replace("...", "")), 0)
    left, right = _expand_ellipsis(left, a.dim(), fresh), _expand_ellipsis(right, b.dim(), fresh)
    out = _expand_ellipsis(out, len(out.replace("...", "")) + ell, fresh)
    if len(set(left)) != len(left) or len(set(right)) != len(right):
        raise Unsupported(f"einsum {equation!r} repeats an index in one operand (a diagonal)")
    if len(left) != a.dim() or len(right) != b.dim():
        raise Unsupported(f"einsum {equation!r} broadcasts operands of different ranks")
    a, left = _sum_unused(a, left, right + out)
    b, right = _sum_unused(b, right, left + out)
    batch = [c for c in out if c in left and c in right]
    contracted = [c for c in left if c in right and c not in out]
    only_a = [c for c in out if c in left and c not in right]
    only_b = [c for c in out if c in right and c not in left]
    sizes = {**dict(zip(right, b.shape, strict=True)), **dict(zip(left, a.shape, strict=True))}
    dims = [sizes[c] for c in (*batch, *only_a, *only_b)]
    am = a.permute([left.index(c) for c in (*batch, *only_a, *contracted)])
    bm = b.permute([right.index(c) for c in (*batch, *contracted, *only_b)])
    nb = [sizes[c] for c in batch]
    am = am.reshape(*nb, math.prod(sizes[c] for c in only_a), -1 if contracted else 1)
    bm = bm.reshape(*nb, am.shape[-1], math.prod(sizes[c] for c in only_b))
    result = mm(am, bm, 0).reshape(dims)
    order = [*batch, *only_a, *only_b]
    return result.permute([order.index(c) for c in out])


def _sum_unused(t: torch.Tensor, sub: str, elsewhere: str) -> tuple[torch.Tensor, str]:
    unused = [i for i, c in enumerate(sub) if c not in elsewhere]
    if not unused:
        return t, sub
    return t.sum(dim=unused), "".join(c for c in sub if c in elsewhere)


def sdpa(args: tuple, kwargs: dict, mm: Product, training: bool) -> torch.Tensor:
    """scaled_dot_product_attention as torch documents it, both products through `mm`."""
    q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    mask = _arg(args, kwargs, 3, "attn_mask")
    dropout = float(_arg(args, kwargs, 4, "dropout_p", 0.0))
    causal = bool(_arg(args, kwargs, 5, "is_causal", False))
    scale = kwargs.get("scale")
    if kwargs.get("enable_gqa"):
        raise Unsupported("grouped-query attention (enable_gqa=True)")
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = mm(q, k.transpose(-2, -1), 0) * scale
    if causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if mask is not None:
        scores = (
            scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        )
    weights = torch.softmax(scores, dim=-1)
    if dropout > 0 and training:
        weights = F.dropout(weights, dropout)
    return mm(weights, v, 1)


def _conv_args(args: tuple, kwargs: dict) -> tuple:
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    defaults = (None, None, None, 1, 0, 1, 1)
    return tuple(
        _arg(args, kwargs, i, n, d) for i, (n, d) in enumerate(zip(names, defaults, strict=True))
    )


def decompose(
    op: str,
    args: tuple,
    kwargs: dict,
    mm: Product,
    *,
    reversed_operands: bool = False,
    training: bool = False,
) -> torch.Tensor:
    """The call `op(*args, **kwargs)` computed with every product through `mm` (see the module
    docstring); `reversed_operands` for `Tensor.__rmatmul__` (args are (b, a))."""
    if op in ("matmul", "mm", "bmm"):
        a, b = args[0], _arg(args, kwargs, 1, "other" if op == "matmul" else "mat2")
        return matmul(b, a, mm) if reversed_operands else matmul(a, b, mm)
    if op in ("addmm", "baddbmm"):
        base, m1, m2 = args[0], args[1], args[2]
        return _scaled_sum(base, matmul(m1, m2, mm), kwargs.get("beta", 1), kwargs.get("alpha", 1))
    if op == "linear":
        x, w, bias = (_arg(args, kwargs, i, n) for i, n in enumerate(("input", "weight", "bias")))
        return linear(x, w, bias, mm)
    if op in ("conv1d", "conv2d"):
        return (conv2d if op == "conv2d" else conv1d)(*_conv_args(args, kwargs), mm)
    if op == "einsum":
        return einsum(args, mm)
    if op == "sdpa":
        return sdpa(args, kwargs, mm, training)
    raise Unsupported(f"{op} has no product form (supported: {', '.join(SUPPORTED_OPS)})")
