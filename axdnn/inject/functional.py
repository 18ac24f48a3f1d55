"""Functional operations inside forward code as injection sites, with stable names.

`OpSites` is a `torch.overrides.TorchFunctionMode`: while it is active every torch function call
(softmax, +, matmul, einsum, relu, ...) is seen, named `<module>.<op>#<k>` where `<module>` is
the qualified name of the innermost module whose forward is running ('' for the root, giving
`<op>#<k>`) and `k` counts that op in that module since the root forward began. Names depend only
on the model's code path, not on other ops, so they are stable across runs; the user's model code
is not changed. Callbacks registered by name may replace the op's output.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from axdnn.runtime import eval_mode

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
    "neg": "neg",
    "rpow": "pow",
    "ipow": "pow",
}


def op_name(func: Callable) -> str | None:
    """Canonical name of a torch function (`Tensor.__radd__` and `torch.add` are both `add`);
    None for accessors that are not operations."""
    name = getattr(func, "__name__", None)
    if not name or name in _SKIP:
        return None
    dunder = name.startswith("__") and name.endswith("__")
    base = name.strip("_")
    if dunder:
        base = _RENAME.get(base, base)
    elif base.endswith("_") or name.endswith("_"):
        base = name.rstrip("_")
    return base or None


class OpSites(TorchFunctionMode):
    """Names every tensor-producing torch call under a model's forward; optionally rewrites them.

    Use as a context manager around forward calls. `callbacks[name](output) -> output` replaces
    an op's (first) output; with `record=True` the names and per-sample shapes are kept in `seen`.
    """

    def __init__(
        self,
        model: nn.Module,
        callbacks: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
        record: bool = False,
    ) -> None:
        super().__init__()
        self.root = model
        self.names = {id(m): n for n, m in model.named_modules()}
        self.callbacks = callbacks or {}
        self.record = record
        self.seen: dict[str, tuple[int, ...]] = {}
        self.stack: list[str] = []
        self.counts: dict[str, int] = defaultdict(int)
        self._handles: list = []

    def _pre(self, module: nn.Module, _args) -> None:
        name = self.names.get(id(module))
        if name is None:
            return
        if module is self.root:
            self.stack.clear()
            self.counts.clear()
        self.stack.append(name)

    def _post(self, module: nn.Module, _args, _out) -> None:
        if id(module) in self.names and self.stack:
            self.stack.pop()

    def __enter__(self):
        from torch.nn.modules.module import (
            register_module_forward_hook,
            register_module_forward_pre_hook,
        )

        self._handles = [
            register_module_forward_pre_hook(self._pre),
            register_module_forward_hook(self._post),
        ]
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        first = out[0] if isinstance(out, (tuple, list)) and out else out
        if not isinstance(first, torch.Tensor) or not first.is_floating_point():
            return out
        op = op_name(func)
        if op is None:
            return out
        prefix = self.stack[-1] if self.stack else ""
        key = f"{prefix}.{op}" if prefix else op
        name = f"{key}#{self.counts[key]}"
        self.counts[key] += 1
        if self.record and name not in self.seen:
            self.seen[name] = tuple(first.shape[1:])
        callback = self.callbacks.get(name)
        if callback is None:
            return out
        new = callback(first)
        if isinstance(out, tuple):
            return (new, *out[1:])
        if isinstance(out, list):
            return [new, *out[1:]]
        return new


@torch.no_grad()
def list_op_sites(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Every functional-op site of one forward on `example`, with its per-sample output shape."""
    with eval_mode(model), OpSites(model, record=True) as mode:
        model(example)
    return dict(mode.seen)
