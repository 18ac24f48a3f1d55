"""A model as a chain of named steps, so dynamic effort can replace single layers and stop early.

`trace_chain` traces the model with torch.fx, keeping every module that is not an `nn.Sequential`
as one leaf (a residual block stays whole), and requires the graph to be a chain: each step takes
the previous step's output. Consecutive Conv2d [BatchNorm2d] [ReLU] and Linear [ReLU] become one
`Affine` step whose batch norm is folded into the weights (eval mode), which the dynamic
mechanisms then run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from axdnn.errors import DynamicError

_RELU_FUNCS = {F.relu, torch.relu, torch.relu_}


@dataclass
class Step:
    """One plain step of the chain: `fn(x)` (a module or a function with fixed extra args)."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    module: nn.Module | None = None
    target: Any = None  # the function or method name of a functional step

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


@dataclass
class Affine:
    """A conv or linear layer (batch norm folded in) with an optional ReLU after it."""

    name: str
    kind: str  # "conv" or "linear"
    weight: torch.Tensor  # conv: O x C x kh x kw; linear: O x K
    bias: torch.Tensor
    relu: bool
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    members: tuple[str, ...] = ()

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The layer run exactly (the reference every mechanism is measured against)."""
        if self.kind == "conv":
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        else:
            y = F.linear(x, self.weight, self.bias)
        return torch.relu(y) if self.relu else y

    def macs_per_input(self, x_shape: tuple[int, ...]) -> int:
        """Dense MACs for one input of shape `x_shape` (no batch dim), as axdnn.cost counts."""
        if self.kind == "linear":
            return int(self.weight.shape[0] * self.weight.shape[1])
        h, w = self.out_hw(x_shape[-2:])
        return int(h * w * self.weight[0].numel() * self.weight.shape[0])

    def out_hw(self, hw: tuple[int, ...]) -> tuple[int, int]:
        k = self.weight.shape[-2:]
        return tuple(
            (hw[i] + 2 * self.padding[i] - self.dilation[i] * (k[i] - 1) - 1) // self.stride[i] + 1
            for i in range(2)
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


class _FixedWindowPool:
    """An adaptive pool run as the plain pool it equals when the input size is a multiple of
    the output size (the same numbers, without adaptive pooling's slow general path)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.max = isinstance(module, nn.AdaptiveMaxPool2d)
        size = module.output_size
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        oh, ow = (s if s is not None else d for s, d in zip(self.size, (h, w), strict=True))
        if h % oh or w % ow or getattr(self.module, "return_indices", False):
            return self.module(x)
        kernel = (h // oh, w // ow)
        return F.max_pool2d(x, kernel) if self.max else F.avg_pool2d(x, kernel)


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return not isinstance(m, nn.Sequential)


def trace_chain(model: nn.Module) -> list[Step | Affine]:
    """The model (in eval mode) as a list of steps run one after the other."""
    model = model.eval()
    try:
        graph = _LeafTracer().trace(model)
    except Exception as exc:  # noqa: BLE001 - fx raises many kinds
        raise DynamicError(
            f"cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: {exc}); "
            "dynamic effort needs a model whose forward is a chain of modules and functions"
        ) from None
    modules = dict(model.named_modules())
    steps: list[Step] = []
    previous: fx.Node | None = None
    for node in graph.nodes:
        if node.op == "placeholder":
            previous = node
            continue
        if node.op == "output":
            if node.args[0] is not previous:
                raise DynamicError(f"{type(model).__name__}: the output is not the last step")
            break
        steps.append(_step_of(node, previous, modules, type(model).__name__))
        previous = node
    return _fuse(steps)


def _step_of(node: fx.Node, previous: fx.Node, modules: dict[str, nn.Module], model: str) -> Step:
    inputs = [a for a in list(node.args) + list(node.kwargs.values()) if isinstance(a, fx.Node)]
    if inputs != [previous]:
        raise DynamicError(
            f"{model}: step {node.name!r} ({node.op} {node.target}) does not take just the "
            "previous step's output, so the model is not a chain; wrap branching parts in one "
            "module (as a residual block is)"
        )
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, nn.AdaptiveMaxPool2d | nn.AdaptiveAvgPool2d):
            return Step(str(node.target), _FixedWindowPool(module), module)
        return Step(str(node.target), module, module)
    if node.op == "get_attr":
        raise DynamicError(f"{model}: step {node.name!r} reads an attribute inside forward")
    target = node.target
    fn = getattr(torch.Tensor, target) if node.op == "call_method" else target
    args, kwargs = node.args, node.kwargs
    index = args.index(previous) if previous in args else None

    def call(x: torch.Tensor) -> torch.Tensor:
        if index is None:
            return fn(*args, **{k: (x if v is previous else v) for k, v in kwargs.items()})
        return fn(*args[:index], x, *args[index + 1 :], **kwargs)

    return Step(node.name, call, None, target)


def is_relu_step(step: Step) -> bool:
    """A ReLU module or a relu function/method call."""
    return isinstance(step.module, nn.ReLU) or step.target in _RELU_FUNCS or step.target == "relu"


def _fuse(steps: list[Step]) -> list[Step | Affine]:
    out: list[Step | Affine] = []
    i = 0
    while i < len(steps):
        step = steps[i]
        if isinstance(step.module, nn.Conv2d | nn.Linear) and _fusable(step.module):
            j = i + 1
            bn = None
            if j < len(steps) and isinstance(steps[j].module, nn.BatchNorm2d | nn.BatchNorm1d):
                bn, j = steps[j].module, j + 1
            relu = j < len(steps) and is_relu_step(steps[j])
            members = tuple(s.name for s in steps[i : j + int(relu)])
            out.append(_affine(step.name, step.module, bn, relu, members))
            i = j + int(relu)
            continue
        out.append(step)
        i += 1
    return out


def _fusable(m: nn.Module) -> bool:
    if isinstance(m, nn.Conv2d):
        return m.groups == 1 and m.padding_mode == "zeros" and not isinstance(m.padding, str)
    return True


@torch.no_grad()
def _affine(name: str, m: nn.Module, bn: nn.Module | None, relu: bool, members) -> Affine:
    w = m.weight.detach().clone().float()
    b = m.bias.detach().clone().float() if m.bias is not None else torch.zeros(w.shape[0])
    if bn is not None:
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        w = w * scale.reshape(-1, *([1] * (w.dim() - 1)))
        b = (b - bn.running_mean) * scale + bn.bias.detach()
    if isinstance(m, nn.Linear):
        return Affine(name, "linear", w, b, relu, members=members)
    return Affine(
        name,
        "conv",
        w.contiguous(),
        b,
        relu,
        tuple(m.stride),
        tuple(m.padding),
        tuple(m.dilation),
        members,
    )
