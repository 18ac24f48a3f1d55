"""Functional operations inside a model's forward, named once for every room.

While a `SiteMode` is active every torch function call (softmax, +, matmul, einsum, F.linear,
...) under the root model's forward gets a stable name `<module>.<op>#<k>`: `<module>` is the
qualified name of the innermost module whose forward is running ('' for the root, giving
`<op>#<k>`) and `k` counts calls of that op in that module since the root's forward began, so a
module called three times gives `#0`, `#1`, `#2`. Names depend only on the model's code path, so
they are the same in plans (`axdnn.nn`), injection (`axdnn.inject`) and the cost model
(`axdnn.cost`), which all see the ops through one mode: handlers `attach` to the active mode of
their root model (one mode per root, so an approximated op is still visible to an injector).

A handler may implement an op itself (an approximate matmul), and may observe or replace an op's
output (an injected error, a MAC count). Ops a handler computes internally are invisible.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

NOT_HANDLED = object()
"""What `SiteHandler.call` returns for an op it leaves to torch."""

_SKIP = {
    "__get__",
    "__set__",
    "__getitem__",
    "__setitem__",
    "size",
    "dim",
    "numel",
    "__len__",
    "__repr__",
    "__format__",
    "__bool__",
    "__index__",
    "__int__",
    "__float__",
    "item",
    "tolist",
    "_has_compatible_shallow_copy_type",
    "__torch_function__",
    "__iter__",
    "is_floating_point",
    "__contains__",
    "__hash__",
    "__eq__ambiguous",
}
_RENAME = {
    "radd": "add",
    "iadd": "add",
    "rsub": "sub",
    "isub": "sub",
    "rmul": "mul",
    "imul": "mul",
    "rmatmul": "matmul",
    "imatmul": "matmul",
    "truediv": "div",
    "rtruediv": "div",
    "itruediv": "div",
    "floordiv": "floor_divide",
    "rfloordiv": "floor_divide",
    "rpow": "pow",
    "ipow": "pow",
}
_SHORT = {"scaled_dot_product_attention": "sdpa"}


def op_name(func: Callable) -> str | None:
    """Canonical name of a torch function (`Tensor.__radd__` and `torch.add` are both `add`,
    `F.scaled_dot_product_attention` is `sdpa`); None for accessors that are not operations."""
    name = getattr(func, "__name__", None)
    if not name or name in _SKIP:
        return None
    dunder = name.startswith("__") and name.endswith("__")
    base = name.strip("_")
    if dunder:
        base = _RENAME.get(base, base)
    elif base.endswith("_") or name.endswith("_"):
        base = name.rstrip("_")
    base = _SHORT.get(base, base)
    return base or None


@dataclass(frozen=True)
class Site:
    """One functional-op call: its name, op and the modules whose forwards are running (outermost
    first, the root excluded)."""

    name: str
    op: str
    modules: tuple[nn.Module, ...]


class SiteHandler:
    """What a room plugs into a `SiteMode`; both methods default to doing nothing."""

    def call(self, site: Site, func: Callable, args: tuple, kwargs: dict) -> Any:
        """Compute the op in place of torch, or return NOT_HANDLED."""
        return NOT_HANDLED

    def after(self, site: Site, func: Callable, args: tuple, kwargs: dict, out: Any) -> Any:
        """Observe the op's output; return it, or a replacement."""
        return out


class SiteMode(TorchFunctionMode):
    """Names every torch call under `root`'s forward and passes it through the handlers."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self.root = root
        self.names = {id(m): n for n, m in root.named_modules()}
        self.foreign: set[int] = set()
        self.handlers: list[SiteHandler] = []
        self.stack: list[tuple[int, nn.Module]] = []
        self.counts: dict[str, int] = defaultdict(int)
        self._hooks: list = []

    def _pre(self, module: nn.Module, _args) -> None:
        if id(module) not in self.names:
            if id(module) in self.foreign:
                return
            self.names = {id(m): n for n, m in self.root.named_modules()}  # built lazily?
            if id(module) not in self.names:
                self.foreign.add(id(module))  # not the root's: look it up only once
                return
        if module is self.root:
            self.stack.clear()
            self.counts.clear()
            return
        self.stack.append((id(module), module))

    def _post(self, module: nn.Module, _args, _out) -> None:
        if self.stack and self.stack[-1][0] == id(module):
            self.stack.pop()

    def __enter__(self):
        from torch.nn.modules.module import (
            register_module_forward_hook,
            register_module_forward_pre_hook,
        )

        self._hooks = [
            register_module_forward_pre_hook(self._pre),
            register_module_forward_hook(self._post),
        ]
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            for hook in self._hooks:
                hook.remove()
            self._hooks = []

    def site(self, op: str) -> Site:
        """The next call of `op` in the running module (advances its counter)."""
        prefix = self.names[self.stack[-1][0]] if self.stack else ""
        key = f"{prefix}.{op}" if prefix else op
        index = self.counts[key]
        self.counts[key] = index + 1
        return Site(f"{key}#{index}", op, tuple(m for _, m in self.stack))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        op = op_name(func)
        if op is None or _LOCAL.internal:
            return func(*args, **kwargs)
        site = self.site(op)
        out = NOT_HANDLED
        _LOCAL.internal += 1
        try:
            for handler in self.handlers:
                out = handler.call(site, func, args, kwargs)
                if out is not NOT_HANDLED:
                    break
        finally:
            _LOCAL.internal -= 1
        if out is NOT_HANDLED:
            out = func(*args, **kwargs)
        for handler in self.handlers:
            out = handler.after(site, func, args, kwargs, out)
        return out


class _Local(threading.local):
    def __init__(self) -> None:
        self.modes: list[SiteMode] = []
        self.internal = 0  # > 0 while a handler computes an op: its inner ops are not sites


_LOCAL = _Local()


@contextlib.contextmanager
def attach(root: nn.Module, handler: SiteHandler) -> Iterator[SiteMode]:
    """Plug `handler` into the active mode of `root` (starting one if none is active)."""
    active = next((m for m in reversed(_LOCAL.modes) if m.root is root), None)
    if active is not None:
        active.handlers.append(handler)
        try:
            yield active
        finally:
            active.handlers.remove(handler)
        return
    mode = SiteMode(root)
    mode.handlers.append(handler)
    _LOCAL.modes.append(mode)
    try:
        with mode:
            yield mode
    finally:
        _LOCAL.modes.remove(mode)


def first_output(out: Any) -> Any:
    """The first element of a tuple/list output, else the output itself."""
    return out[0] if isinstance(out, (tuple, list)) and out else out


def replace_first(out: Any, new: torch.Tensor) -> Any:
    """`out` with its first output replaced by `new` (same container type)."""
    if isinstance(out, tuple):
        return (new, *out[1:])
    if isinstance(out, list):
        return [new, *out[1:]]
    return new
