"""Module counters: how many MACs one call of a layer module performs, by module type.

Built in: Conv1d/2d/3d, ConvTranspose1d/2d/3d, Linear, MultiheadAttention, RNN/LSTM/GRU and their
cells (the last two run fused kernels that no function mode sees). Other rooms register their own
layers with `register_module_counter`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from axdnn.errors import ConfigError

__all__ = [
    "ModuleCounter",
    "OpCount",
    "first_tensor",
    "module_counter",
    "register_module_counter",
]


@dataclass(frozen=True)
class OpCount:
    """What a module counter reports for one call, over the whole batch."""

    kind: str
    macs: int
    weight_elems: int = 0
    in_channels: int | None = None
    out_channels: int | None = None
    kernel: tuple[int, ...] | None = None
    groups: int | None = None


ModuleCounter = Callable[[nn.Module, tuple[Any, ...], dict[str, Any], Any], OpCount]
_MODULE_COUNTERS: dict[type, ModuleCounter] = {}


def register_module_counter(cls: type[nn.Module], counter: ModuleCounter) -> None:
    """Count modules of type `cls` (and subclasses) with `counter(module, args, kwargs, output)`.

    Nothing called inside a counted module is counted again, so a layer that wraps its own
    kernel or submodules is one record. Later rooms register their approximate layers here.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"register_module_counter needs an nn.Module subclass, got {cls!r}")
    if not callable(counter):
        raise ConfigError(f"counter for {cls.__name__} must be callable, got {counter!r}")
    _MODULE_COUNTERS[cls] = counter


def module_counter(module: nn.Module) -> ModuleCounter | None:
    """The counter registered for the module's type or its nearest base class, if any."""
    for klass in type(module).__mro__:
        if klass in _MODULE_COUNTERS:
            return _MODULE_COUNTERS[klass]
    return None


def first_tensor(*items: Any) -> torch.Tensor | None:
    """The first tensor found in (nested) tuples, lists, mappings or PackedSequences."""
    for item in items:
        if isinstance(item, PackedSequence):
            item = item.data
        if isinstance(item, torch.Tensor):
            return item
        if isinstance(item, (list, tuple)):
            found = first_tensor(*item)
        elif isinstance(item, Mapping):
            found = first_tensor(*item.values())
        else:
            continue
        if found is not None:
            return found
    return None


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs[name]


def _count_conv(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
) -> OpCount:
    """``out_elems * (C_in / groups) * prod(kernel)`` from the actual output."""
    w = module.weight  # (C_out, C_in / groups, *kernel)
    kernel = tuple(int(k) for k in w.shape[2:])
    return OpCount(
        kind=f"conv{len(kernel)}d",
        macs=first_tensor(output).numel() * int(w.shape[1]) * math.prod(kernel),
        weight_elems=w.numel(),
        in_channels=module.in_channels,
        out_channels=module.out_channels,
        kernel=kernel,
        groups=module.groups,
    )


def _count_conv_transpose(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
) -> OpCount:
    """Every input element meets ``(C_out / groups) * prod(kernel)`` weights."""
    w = module.weight  # (C_in, C_out / groups, *kernel)
    kernel = tuple(int(k) for k in w.shape[2:])
    return OpCount(
        kind=f"conv_transpose{len(kernel)}d",
        macs=first_tensor(args, kwargs).numel() * int(w.shape[1]) * math.prod(kernel),
        weight_elems=w.numel(),
        in_channels=module.in_channels,
        out_channels=module.out_channels,
        kernel=kernel,
        groups=module.groups,
    )


def _count_linear(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
) -> OpCount:
    """``in_features * out_features`` per leading position."""
    w = module.weight
    return OpCount(
        kind="linear",
        macs=first_tensor(output).numel() * int(w.shape[1]),
        weight_elems=w.numel(),
        in_channels=int(w.shape[1]),
        out_channels=int(w.shape[0]),
    )


def _count_mha(
    module: nn.MultiheadAttention, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
) -> OpCount:
    """Q/K/V and output projections plus ``2 * L * S * E`` for QK^T and attention x V."""
    q, k = _arg(args, kwargs, 0, "query"), _arg(args, kwargs, 1, "key")
    if q.dim() == 2:
        n, length, source = 1, q.shape[0], k.shape[0]
    elif module.batch_first:
        n, length, source = q.shape[0], q.shape[1], k.shape[1]
    else:
        n, length, source = q.shape[1], q.shape[0], k.shape[0]
    source += (module.bias_k is not None) + bool(module.add_zero_attn)
    e = module.embed_dim
    proj = length * e * e + source * e * (module.kdim + module.vdim) + length * e * e
    weights = (module.in_proj_weight, module.q_proj_weight, module.k_proj_weight)
    weights += (module.v_proj_weight, module.out_proj.weight)
    return OpCount(
        kind="mha",
        macs=n * (proj + 2 * length * source * e),
        weight_elems=sum(w.numel() for w in weights if w is not None),
        in_channels=e,
        out_channels=e,
    )


_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _steps(x: Any) -> int:
    """Time steps times batch entries of an RNN input (packed, batched or unbatched)."""
    if isinstance(x, PackedSequence):
        return int(x.data.shape[0])
    return int(x.shape[0]) if x.dim() == 2 else int(x.shape[0] * x.shape[1])


def _count_rnn(
    module: nn.RNNBase, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
) -> OpCount:
    """Per step and direction: ``gates * H * (I + H_out)``, plus ``H * P`` for LSTM projection."""
    h, p = module.hidden_size, module.proj_size or module.hidden_size
    dirs = 2 if module.bidirectional else 1
    projection = h * p if module.proj_size else 0
    per_step = 0
    for layer in range(module.num_layers):
        inp = module.input_size if layer == 0 else p * dirs
        per_step += dirs * (_GATES[module.mode] * h * (inp + p) + projection)
    weights = [w for name, w in module.named_parameters() if name.startswith("weight")]
    return OpCount(
        kind=module.mode.lower(),
        macs=_steps(_arg(args, kwargs, 0, "input")) * per_step,
        weight_elems=sum(w.numel() for w in weights),
        in_channels=module.input_size,
        out_channels=p * dirs,
    )


def _count_rnn_cell(
    module: nn.RNNCellBase, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
) -> OpCount:
    """``gates * H * (I + H)`` per batch entry."""
    gates = {nn.LSTMCell: 4, nn.GRUCell: 3}.get(type(module), 1)
    x = _arg(args, kwargs, 0, "input")
    n = 1 if x.dim() == 1 else int(x.shape[0])
    h = module.hidden_size
    return OpCount(
        kind=type(module).__name__.lower(),
        macs=n * gates * h * (module.input_size + h),
        weight_elems=module.weight_ih.numel() + module.weight_hh.numel(),
        in_channels=module.input_size,
        out_channels=h,
    )


for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    register_module_counter(_cls, _count_conv)
for _cls in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
    register_module_counter(_cls, _count_conv_transpose)
register_module_counter(nn.Linear, _count_linear)
register_module_counter(nn.MultiheadAttention, _count_mha)
register_module_counter(nn.RNNBase, _count_rnn)
register_module_counter(nn.RNNCellBase, _count_rnn_cell)
