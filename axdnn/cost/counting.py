"""Operation counting: per-layer multiply-accumulates (MACs), parameters and activation sizes.

`count_ops` runs the model once on zeros with forward hooks on every module (a call stack gives
each functional op its parent's name) and a handler on the model's `axdnn.sites.SiteMode` that
sees functional matmul, einsum, linear and conv calls made outside counted Conv/Linear modules.

Conventions (documented once, relied on by the energy model):

- A MAC is one multiplication plus its accumulation. Bias additions, normalisation, activations,
  pooling and softmax are not MACs and are not counted.
- Convolution: ``out_elems * (C_in / groups) * prod(kernel)``, taken from the actual output
  shape, so stride, padding, dilation and groups are all honoured. Transposed convolution:
  ``in_elems * (C_out / groups) * prod(kernel)``.
- Linear: ``in_features * out_features`` per leading position (any number of leading dims).
- matmul / mm / bmm / addmm / baddbmm: ``out_elems * K`` with K the contracted size.
- einsum with two or more operands: the product of the sizes of every index that appears in the
  operands (the cost of one naive nested loop); with one operand there are no products, so 0.
- scaled_dot_product_attention: ``batch * L * S * (E + E_v)`` (QK^T plus attention x V).
- MultiheadAttention: the four projections plus ``2 * L * S * E``; RNN/LSTM/GRU: ``gates * H *
  (I + H)`` per step, layer and direction (these run fused kernels, so they are module counters).
- A functional op belongs to the innermost module whose forward called it and is named as in
  plans and injection (`axdnn.sites`): ``<module name>.<kind>#<i>``, ``i`` counting calls of that
  kind in that module over the whole forward (a module called twice gives ``#0`` and ``#1``);
  ops inside a counted module (one with a registered counter) are part of that module's count.
- All per-layer figures are per sample: the run's totals divided by ``batch_size``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from axdnn.cost import functional
from axdnn.cost.counters import (
    ModuleCounter,
    OpCount,
    first_tensor,
    module_counter,
    register_module_counter,
)
from axdnn.cost.records import CostReport, LayerCost
from axdnn.errors import ShapeError
from axdnn.runtime import TemporaryHooks
from axdnn.sites import Site, SiteHandler, attach

__all__ = [
    "CostReport",
    "LayerCost",
    "ModuleCounter",
    "OpCount",
    "count_ops",
    "register_module_counter",
]


@dataclass
class _Frame:
    name: str
    counted: bool  # this module is a counted layer
    suppressing: bool  # this module is, or is inside, a counted layer: nothing else counts


class _Counter(SiteHandler):
    """Module hooks + site handler: a module call stack and the records gathered so far."""

    def __init__(self, model: nn.Module, batch_size: int) -> None:
        self.batch = batch_size
        self.stack: list[_Frame] = []
        self.counted_depth = 0
        self.records: dict[str, LayerCost] = {}
        self.names = {id(m): n for n, m in model.named_modules()}

    # module hooks
    def pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        counted = self.counted_depth == 0 and module_counter(module) is not None
        suppressing = counted or self.counted_depth > 0
        name = self.names.get(id(module), type(module).__name__)
        self.stack.append(_Frame(name, counted, suppressing))
        self.counted_depth += suppressing

    def post_hook(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        frame = self.stack.pop()
        self.counted_depth -= frame.suppressing
        if not frame.counted:
            return
        op = module_counter(module)(module, args, kwargs, output)
        x, y = first_tensor(args, kwargs), first_tensor(output)
        params = sum(p.numel() for p in module.parameters())
        self._record(frame.name, op, params, x, y, [x] if x is not None else [])

    # functional ops
    def after(self, site: Site, func, args, kwargs, out):  # noqa: D102 - see SiteHandler
        entry = functional.lookup(func) if self.counted_depth == 0 else None
        if entry is None:
            return out
        kind, macs_fn = entry
        op, acts = functional.count_call(kind, macs_fn, args, kwargs, out)
        params = functional.parameters_in(args, kwargs)
        self._record(site.name, op, params, acts[0] if acts else None, first_tensor(out), acts)
        return out

    def _record(
        self,
        name: str,
        op: OpCount,
        params: int,
        x: torch.Tensor | None,
        y: torch.Tensor | None,
        inputs: list[torch.Tensor],
    ) -> None:
        b = self.batch
        macs = _per_sample(op.macs, b)
        in_elems = _per_sample(sum(t.numel() for t in inputs), b)
        out_elems = _per_sample(y.numel(), b) if y is not None else 0
        old = self.records.get(name)
        if old is not None:
            old.macs += macs
            old.input_elems += in_elems
            old.output_elems += out_elems
            old.calls += 1
            return
        self.records[name] = LayerCost(
            name=name,
            kind=op.kind,
            macs=macs,
            params=params,
            weight_elems=op.weight_elems,
            input_elems=in_elems,
            output_elems=out_elems,
            input_shape=tuple(x.shape) if x is not None else (),
            output_shape=tuple(y.shape) if y is not None else (),
            in_channels=op.in_channels,
            out_channels=op.out_channels,
            kernel=op.kernel,
            groups=op.groups,
        )


def _per_sample(total: int, batch: int) -> int:
    return total // batch if total % batch == 0 else int(round(total / batch))


@contextmanager
def _hooked(model: nn.Module, counter: _Counter) -> Iterator[None]:
    with TemporaryHooks() as hooks:
        for module in model.modules():
            hooks.pre(module, counter.pre_hook)
            hooks.post(module, counter.post_hook, with_kwargs=True)
        yield


def _input_like(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype | None):
    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    if dtype is None:
        dtype = ref.dtype if ref is not None else torch.float32
    device = ref.device if ref is not None else torch.device("cpu")
    return torch.zeros(shape, dtype=dtype, device=device)


def _meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Shape-only stand-ins for every parameter (still nn.Parameters) and buffer."""
    state: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        state[name] = nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
    for name, b in model.named_buffers():
        state[name] = torch.empty_like(b, device="meta")
    return state


def _run(model: nn.Module, x: torch.Tensor, batch: int, on_meta: bool) -> _Counter:
    counter = _Counter(model, batch)
    with torch.no_grad(), _hooked(model, counter), attach(model, counter):
        if on_meta:
            functional_call(model, _meta_state(model), (x.to("meta"),))
        else:
            model(x)
    return counter


def _count(model: nn.Module, x: torch.Tensor, batch: int, meta: bool | None) -> _Counter:
    if meta is not False:
        try:
            return _run(model, x, batch, on_meta=True)
        except Exception:  # noqa: BLE001 - any failure on meta: count with real tensors
            if meta:
                raise
    return _run(model, x, batch, on_meta=False)


def count_ops(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int = 1,
    *,
    dtype: torch.dtype | None = None,
    meta: bool | None = None,
) -> CostReport:
    """Count per-sample MACs, parameters and activation sizes of `model` layer by layer.

    Runs the model once on zeros of shape ``(batch_size, *input_shape)`` in eval mode under
    ``torch.no_grad`` and restores every module's training mode. The run is shape-only on the
    meta device when the model allows it (no arithmetic, so big models count fast) and on the
    model's own device otherwise; ``meta=True``/``False`` forces one. See the module docstring
    for how each operation is counted.
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise ShapeError(
            f"input_shape {input_shape!r} must be a non-empty tuple of positive sizes "
            f"without the batch dimension, e.g. (3, 32, 32)"
        )
    if int(batch_size) < 1:
        raise ShapeError(f"batch_size {batch_size!r} must be a positive integer")
    batch = int(batch_size)
    x = _input_like(model, (batch, *shape), dtype)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        counter = _count(model, x, batch, meta)
    except (RuntimeError, ValueError, IndexError) as err:
        raise ShapeError(
            f"model {type(model).__name__} failed on input of shape {(batch, *shape)} "
            f"(input_shape={shape!r}): {err}"
        ) from err
    finally:
        for module, training in modes:
            module.training = training
    return CostReport(
        layers=list(counter.records.values()),
        total_params=sum(p.numel() for p in model.parameters()),  # shared ones once
        input_shape=shape,
        batch_size=batch,
        model=type(model).__name__,
    )
