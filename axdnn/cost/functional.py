"""Functional ops that carry MACs (matmul, mm, bmm, addmm, baddbmm, einsum, linear, conv, SDPA):
which torch functions they are, how many MACs one call performs, and which operands are weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from axdnn.cost.counters import OpCount, first_tensor

__all__ = [
    "WEIGHTED_KINDS",
    "FnMacs",
    "conv_groups",
    "count_call",
    "einsum_macs",
    "lookup",
    "parameters_in",
    "split_operands",
]

FnMacs = Callable[[tuple[Any, ...], Mapping[str, Any], Any], int]
WEIGHTED_KINDS = ("linear", "conv1d", "conv2d", "conv3d")


def einsum_macs(args: tuple[Any, ...]) -> int:
    """Product of the sizes of all indices in the operands; 0 for one operand (no products)."""
    operands = list(args[1:])
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):  # einsum(eq, [a, b])
        operands = list(operands[0])
    operands = [op for op in operands if isinstance(op, torch.Tensor)]
    if len(operands) < 2:
        return 0
    subscripts = str(args[0]).split("->")[0].replace(" ", "").split(",")
    sizes: dict[str, int] = {}
    for sub, op in zip(subscripts, operands, strict=False):
        shape = [int(s) for s in op.shape]
        letters, dims = sub, shape
        if "..." in sub:
            head, tail = sub.split("...")
            n_ell = len(shape) - len(head) - len(tail)
            letters, dims = head + tail, shape[: len(head)] + shape[len(head) + n_ell :]
            for i, size in enumerate(reversed(shape[len(head) : len(head) + n_ell])):
                sizes[f"...{i}"] = max(sizes.get(f"...{i}", 1), size)  # aligned from the right
        for letter, size in zip(letters, dims, strict=False):
            sizes[letter] = max(sizes.get(letter, 1), size)
    return math.prod(sizes.values())


def _sdpa_macs(args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any) -> int:
    """``batch * L * S * (E + E_v)``: QK^T plus attention x V."""
    q = args[0] if len(args) > 0 else kwargs["query"]
    k = args[1] if len(args) > 1 else kwargs["key"]
    v = args[2] if len(args) > 2 else kwargs["value"]
    return math.prod(q.shape[:-2]) * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _contracted(left_index: int) -> FnMacs:
    """``out_elems * K`` with K the last dim of the left factor at `left_index`."""

    def macs(args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any) -> int:
        return first_tensor(out).numel() * int(args[left_index].shape[-1])

    return macs


def _weight(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> torch.Tensor:
    return args[1] if len(args) > 1 else kwargs["weight"]


def _conv_macs(args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any) -> int:
    w = _weight(args, kwargs)
    return out.numel() * int(w.shape[1]) * math.prod(int(k) for k in w.shape[2:])


def _linear_macs(args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any) -> int:
    return out.numel() * int(_weight(args, kwargs).shape[-1])


def _table() -> dict[Any, tuple[str, FnMacs]]:
    table: dict[Any, tuple[str, FnMacs]] = {
        torch.matmul: ("matmul", _contracted(0)),
        torch.mm: ("mm", _contracted(0)),
        torch.bmm: ("bmm", _contracted(0)),
        torch.addmm: ("addmm", _contracted(1)),
        torch.baddbmm: ("baddbmm", _contracted(1)),
        torch.einsum: ("einsum", lambda a, k, o: einsum_macs(a)),
        F.linear: ("linear", _linear_macs),
        F.conv1d: ("conv1d", _conv_macs),
        F.conv2d: ("conv2d", _conv_macs),
        F.conv3d: ("conv3d", _conv_macs),
        F.scaled_dot_product_attention: ("sdpa", _sdpa_macs),
    }
    methods = {
        "matmul": ("matmul", _contracted(0)),
        "__matmul__": ("matmul", _contracted(0)),
        "__rmatmul__": ("matmul", _contracted(1)),  # a.__rmatmul__(b) is b @ a
        "mm": ("mm", _contracted(0)),
        "bmm": ("bmm", _contracted(0)),
        "addmm": ("addmm", _contracted(1)),
        "baddbmm": ("baddbmm", _contracted(1)),
    }
    for owner in (torch.Tensor, torch._C.TensorBase):
        for attr, entry in methods.items():
            fn = getattr(owner, attr, None)
            if fn is not None and fn not in table:
                table[fn] = entry
    return table


_TABLE = _table()


def lookup(func: Any) -> tuple[str, FnMacs] | None:
    """(kind, MAC function) if `func` is a counted functional op, else None."""
    try:
        return _TABLE.get(func)
    except TypeError:  # unhashable callables are never counted ops
        return None


def conv_groups(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """The ``groups`` argument of a functional conv call."""
    return int(args[6]) if len(args) > 6 else int(kwargs.get("groups", 1))


def _flatten(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Iterator[Any]:
    for item in (*args, *kwargs.values()):
        if isinstance(item, (list, tuple)):
            yield from item
        else:
            yield item


def split_operands(
    kind: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(activation operands, weight operands) of a call; biases and added terms are neither.

    For linear/conv the second argument is the weight; for products, nn.Parameter operands are
    weights and every other tensor operand is an activation.
    """
    if kind in WEIGHTED_KINDS:
        x = args[0] if args else kwargs["input"]
        return [x], [_weight(args, kwargs)]
    if kind in ("addmm", "baddbmm"):
        args = args[1:]
        kwargs = {k: v for k, v in kwargs.items() if k != "input"}
    elif kind == "sdpa":
        args = args[:3]
        kwargs = {k: v for k, v in kwargs.items() if k in ("query", "key", "value")}
    tensors = [t for t in _flatten(args, kwargs) if isinstance(t, torch.Tensor)]
    weights = [t for t in tensors if isinstance(t, nn.Parameter)]
    return [t for t in tensors if not isinstance(t, nn.Parameter)], weights


def parameters_in(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """Elements of all nn.Parameter arguments (weights and biases)."""
    return sum(t.numel() for t in _flatten(args, kwargs) if isinstance(t, nn.Parameter))


def count_call(
    kind: str, macs_fn: FnMacs, args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any
) -> tuple[OpCount, list[torch.Tensor]]:
    """(count over the batch, activation operands) of one functional call; conv/linear geometry
    comes from the weight's shape."""
    acts, weights = split_operands(kind, args, kwargs)
    op = OpCount(
        kind=kind,
        macs=int(macs_fn(args, kwargs, out)),
        weight_elems=sum(w.numel() for w in weights),
    )
    if kind not in WEIGHTED_KINDS:
        return op, acts
    w = weights[0]
    if kind == "linear":
        return replace(op, in_channels=int(w.shape[-1]), out_channels=int(w.shape[0])), acts
    groups = conv_groups(args, kwargs)
    kernel = tuple(int(k) for k in w.shape[2:])
    geometry = {"in_channels": int(w.shape[1]) * groups, "out_channels": int(w.shape[0])}
    return replace(op, kernel=kernel, groups=groups, **geometry), acts
