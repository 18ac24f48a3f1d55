"""Functional operations inside forward code as injection sites, with the names every room uses.

`OpSites` plugs into the model's `axdnn.sites.SiteMode` while it is entered: every torch call
under the forward (softmax, +, matmul, einsum, relu, ...) is named `<module>.<op>#<k>` (see
`axdnn.sites`), the same names plans and the cost model use; the user's model code is not
changed. Callbacks registered by name may replace the op's (first, floating-point) output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

from axdnn.runtime import eval_mode
from axdnn.sites import Site, SiteHandler, attach, first_output, op_name, replace_first

__all__ = ["OpSites", "list_op_sites", "op_name"]


class OpSites(SiteHandler):
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
        self.root = model
        self.callbacks = callbacks or {}
        self.record = record
        self.seen: dict[str, tuple[int, ...]] = {}
        self._stack: contextlib.ExitStack | None = None

    def after(self, site: Site, func, args, kwargs, out):  # noqa: D102 - see SiteHandler
        first = first_output(out)
        if not isinstance(first, torch.Tensor) or not first.is_floating_point():
            return out
        if self.record and site.name not in self.seen:
            self.seen[site.name] = tuple(first.shape[1:])
        callback = self.callbacks.get(site.name)
        return out if callback is None else replace_first(out, callback(first))

    def __enter__(self) -> OpSites:
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(attach(self.root, self))
        return self

    def __exit__(self, *exc) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.__exit__(*exc)


@torch.no_grad()
def list_op_sites(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Every functional-op site of one forward on `example`, with its per-sample output shape."""
    with eval_mode(model), OpSites(model, record=True) as mode:
        model(example)
    return dict(mode.seen)
