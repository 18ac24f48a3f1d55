"""Operation counting: per-layer multiply-accumulates (MACs), parameters and activation sizes.

`count_ops` runs the model once on zeros with forward hooks on every module (a call stack gives
each functional op its parent's name) and a `TorchFunctionMode` that sees functional matmul,
einsum, linear and conv calls made outside counted Conv/Linear modules.

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
- All per-layer figures are per sample: the run's totals divided by ``batch_size``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from axdnn.errors import ConfigError, ShapeError

__all__ = [
    "CostReport",
    "LayerCost",
    "ModuleCounter",
    "OpCount",
    "count_ops",
    "register_module_counter",
]


@dataclass
class LayerCost:
    """Cost of one layer (a counted module or one functional op), per sample.

    Shapes are those observed in the counting run, batch dimension included; element counts are
    per sample. A module called several times in one forward is one record with ``calls > 1`` and
    summed MACs/activations.
    """

    name: str
    kind: str
    macs: int
    params: int = 0
    weight_elems: int = 0
    input_elems: int = 0
    output_elems: int = 0
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    in_channels: int | None = None
    out_channels: int | None = None
    kernel: tuple[int, ...] | None = None
    groups: int | None = None
    skipped_macs: int = 0
    calls: int = 1

    @property
    def effective_macs(self) -> int:
        """MACs actually performed: ``macs - skipped_macs``."""
        return self.macs - self.skipped_macs

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists, ``effective_macs`` included)."""
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["output_shape"] = list(self.output_shape)
        d["kernel"] = None if self.kernel is None else list(self.kernel)
        d["effective_macs"] = self.effective_macs
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerCost:
        """Inverse of `to_dict`; derived keys such as ``effective_macs`` are ignored."""
        known = {f.name for f in fields(cls)}
        missing = {"name", "kind", "macs"} - set(d)
        if missing:
            raise ConfigError(
                f"layer record {dict(d)!r} lacks key(s) {sorted(missing)}; "
                f"a LayerCost needs name, kind and macs"
            )
        kw = {k: v for k, v in d.items() if k in known}
        for key in ("input_shape", "output_shape"):
            if key in kw:
                kw[key] = tuple(kw[key])
        if kw.get("kernel") is not None:
            kw["kernel"] = tuple(kw["kernel"])
        return cls(**kw)


@dataclass
class CostReport:
    """Per-layer costs of one model at one input shape; totals are derived from the layers.

    ``total_params`` counts every parameter of the model once (normalisation layers included),
    which is more than the sum over counted layers.
    """

    layers: list[LayerCost]
    total_params: int
    input_shape: tuple[int, ...] = ()
    batch_size: int = 1
    model: str = ""

    @property
    def total_macs(self) -> int:
        """Sum of per-sample MACs over all layers."""
        return sum(layer.macs for layer in self.layers)

    @property
    def total_skipped_macs(self) -> int:
        """Sum of per-sample skipped MACs over all layers."""
        return sum(layer.skipped_macs for layer in self.layers)

    @property
    def total_effective_macs(self) -> int:
        """MACs actually performed per sample."""
        return self.total_macs - self.total_skipped_macs

    def layer(self, name: str) -> LayerCost:
        """The record named `name`; ConfigError listing the known names otherwise."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ConfigError(f"no layer named {name!r} in cost report; known: {self.names()}")

    def names(self) -> list[str]:
        """Layer names in call order."""
        return [layer.name for layer in self.layers]

    def with_skipped(
        self, skipped: Mapping[str, int | float] | Callable[[str], int | float | None]
    ) -> CostReport:
        """A copy whose layers' ``skipped_macs`` are set from a name->count map or function.

        Counts are per sample and may be averages (rounded to the nearest MAC); they must lie in
        ``[0, macs]``. Layers not named (or mapped to None) keep their current value.
        """
        if isinstance(skipped, Mapping):
            unknown = sorted(set(skipped) - set(self.names()))
            if unknown:
                raise ConfigError(
                    f"skipped MACs given for unknown layer(s) {unknown}; known: {self.names()}"
                )
            get: Callable[[str], int | float | None] = skipped.get
        else:
            get = skipped
        layers = []
        for layer in self.layers:
            value = get(layer.name)
            if value is None:
                layers.append(replace(layer))
                continue
            n = int(round(float(value)))
            if not 0 <= n <= layer.macs:
                raise ConfigError(
                    f"skipped MACs {value!r} for layer {layer.name!r} outside [0, {layer.macs}]"
                )
            layers.append(replace(layer, skipped_macs=n))
        return replace(self, layers=layers)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict with layers and the derived totals."""
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "batch_size": self.batch_size,
            "total_macs": self.total_macs,
            "total_skipped_macs": self.total_skipped_macs,
            "total_effective_macs": self.total_effective_macs,
            "total_params": self.total_params,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CostReport:
        """Inverse of `to_dict`; derived totals are recomputed, not read."""
        if not isinstance(d, Mapping) or "layers" not in d or "total_params" not in d:
            raise ConfigError(
                f"cost report dict must be a mapping with 'layers' and 'total_params'; got "
                f"{type(d).__name__} with keys {sorted(d) if isinstance(d, Mapping) else None}"
            )
        return cls(
            layers=[LayerCost.from_dict(x) for x in d["layers"]],
            total_params=int(d["total_params"]),
            input_shape=tuple(d.get("input_shape", ())),
            batch_size=int(d.get("batch_size", 1)),
            model=str(d.get("model", "")),
        )


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


ModuleCounter = Callable[[nn.Module, tuple[Any, ...], Any], OpCount]
_MODULE_COUNTERS: dict[type, ModuleCounter] = {}


def register_module_counter(cls: type[nn.Module], counter: ModuleCounter) -> None:
    """Count modules of type `cls` (and subclasses) with `counter(module, args, output)`.

    Nothing called inside a counted module is counted again, so a layer that wraps its own
    kernel or submodules is one record. Later rooms register their approximate layers here.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"register_module_counter needs an nn.Module subclass, got {cls!r}")
    _MODULE_COUNTERS[cls] = counter


def _counter_for(module: nn.Module) -> ModuleCounter | None:
    for klass in type(module).__mro__:
        if klass in _MODULE_COUNTERS:
            return _MODULE_COUNTERS[klass]
    return None


def _first_tensor(*items: Any) -> torch.Tensor | None:
    for item in items:
        if isinstance(item, torch.Tensor):
            return item
        if isinstance(item, (list, tuple)):
            found = _first_tensor(*item)
            if found is not None:
                return found
        if isinstance(item, Mapping):
            found = _first_tensor(*item.values())
            if found is not None:
                return found
    return None


def _count_conv(module: nn.Module, args: tuple[Any, ...], output: Any) -> OpCount:
    w = module.weight
    kernel = tuple(int(k) for k in w.shape[2:])
    out = _first_tensor(output)
    return OpCount(
        kind=f"conv{len(kernel)}d",
        macs=out.numel() * int(w.shape[1]) * math.prod(kernel),
        weight_elems=w.numel(),
        in_channels=module.in_channels,
        out_channels=module.out_channels,
        kernel=kernel,
        groups=module.groups,
    )


def _count_conv_transpose(module: nn.Module, args: tuple[Any, ...], output: Any) -> OpCount:
    w = module.weight  # (C_in, C_out / groups, *kernel)
    kernel = tuple(int(k) for k in w.shape[2:])
    x = _first_tensor(args)
    return OpCount(
        kind=f"conv_transpose{len(kernel)}d",
        macs=x.numel() * int(w.shape[1]) * math.prod(kernel),
        weight_elems=w.numel(),
        in_channels=module.in_channels,
        out_channels=module.out_channels,
        kernel=kernel,
        groups=module.groups,
    )


def _count_linear(module: nn.Module, args: tuple[Any, ...], output: Any) -> OpCount:
    w = module.weight
    out = _first_tensor(output)
    return OpCount(
        kind="linear",
        macs=out.numel() * int(w.shape[1]),
        weight_elems=w.numel(),
        in_channels=int(w.shape[1]),
        out_channels=int(w.shape[0]),
    )


for _cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    register_module_counter(_cls, _count_conv)
for _cls in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):
    register_module_counter(_cls, _count_conv_transpose)
register_module_counter(nn.Linear, _count_linear)


# ---- functional ops ------------------------------------------------------------------------


def _einsum_macs(args: tuple[Any, ...]) -> int:
    """Product of the sizes of all indices in the operands (0 for a single operand)."""
    equation = str(args[0])
    operands = list(args[1:])
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):  # einsum(eq, [a, b])
        operands = list(operands[0])
    subscripts = equation.split("->")[0].replace(" ", "").split(",")
    operands = [op for op in operands if isinstance(op, torch.Tensor)]
    if len(operands) < 2:
        return 0
    sizes: dict[str, int] = {}
    for sub, op in zip(subscripts, operands, strict=False):
        shape = list(op.shape)
        if "..." in sub:
            head, tail = sub.split("...")
            n_ell = len(shape) - len(head) - len(tail)
            ell = shape[len(head) : len(head) + n_ell]
            letters = head + tail
            dims = shape[: len(head)] + shape[len(head) + n_ell :]
            for i, size in enumerate(reversed(ell)):  # ellipsis dims align from the right
                key = f"...{i}"
                sizes[key] = max(sizes.get(key, 1), int(size))
        else:
            letters, dims = sub, shape
        for letter, size in zip(letters, dims, strict=False):
            sizes[letter] = max(sizes.get(letter, 1), int(size))
    return math.prod(sizes.values())


def _sdpa_macs(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    q = args[0] if len(args) > 0 else kwargs["query"]
    k = args[1] if len(args) > 1 else kwargs["key"]
    v = args[2] if len(args) > 2 else kwargs["value"]
    batch = math.prod(q.shape[:-2])
    return batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _contracted(left_index: int) -> Callable[[tuple[Any, ...], Mapping[str, Any], Any], int]:
    def macs(args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any) -> int:
        return _first_tensor(out).numel() * int(args[left_index].shape[-1])

    return macs


def _conv_fn_macs(args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any) -> int:
    w = args[1] if len(args) > 1 else kwargs["weight"]
    return out.numel() * int(w.shape[1]) * math.prod(int(k) for k in w.shape[2:])


def _linear_fn_macs(args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any) -> int:
    w = args[1] if len(args) > 1 else kwargs["weight"]
    return out.numel() * int(w.shape[-1])


_FnMacs = Callable[[tuple[Any, ...], Mapping[str, Any], Any], int]


def _functional_table() -> dict[Any, tuple[str, _FnMacs]]:
    table: dict[Any, tuple[str, _FnMacs]] = {
        torch.matmul: ("matmul", _contracted(0)),
        torch.mm: ("mm", _contracted(0)),
        torch.bmm: ("bmm", _contracted(0)),
        torch.addmm: ("addmm", _contracted(1)),
        torch.baddbmm: ("baddbmm", _contracted(1)),
        torch.einsum: ("einsum", lambda a, k, o: _einsum_macs(a)),
        F.linear: ("linear", _linear_fn_macs),
        F.conv1d: ("conv1d", _conv_fn_macs),
        F.conv2d: ("conv2d", _conv_fn_macs),
        F.conv3d: ("conv3d", _conv_fn_macs),
        F.scaled_dot_product_attention: ("sdpa", lambda a, k, o: _sdpa_macs(a, k)),
    }
    methods = {
        "matmul": ("matmul", _contracted(0)),
        "__matmul__": ("matmul", _contracted(0)),
        "__rmatmul__": ("matmul", _contracted(1)),
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


_FUNCTIONAL = _functional_table()


# ---- the counting run ----------------------------------------------------------------------


@dataclass
class _Frame:
    name: str
    counted: bool
    op_index: dict[str, int] = field(default_factory=dict)


class _Counter(TorchFunctionMode):
    """Hooks + function mode state: a module call stack and the records gathered so far."""

    def __init__(self, model: nn.Module, batch_size: int) -> None:
        super().__init__()
        self.batch = batch_size
        self.stack: list[_Frame] = []
        self.counted_depth = 0
        self.outside = _Frame("", False)
        self.records: dict[str, LayerCost] = {}
        self.names = {id(m): n for n, m in model.named_modules()}

    # module hooks
    def pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        counted = self.counted_depth == 0 and _counter_for(module) is not None
        self.stack.append(_Frame(self.names.get(id(module), type(module).__name__), counted))
        if counted:
            self.counted_depth += 1
        elif self.counted_depth:
            self.counted_depth += 1

    def post_hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        frame = self.stack.pop()
        if self.counted_depth:
            self.counted_depth -= 1
        if not frame.counted:
            return
        op = _counter_for(module)(module, args, output)
        x, y = _first_tensor(args), _first_tensor(output)
        params = sum(p.numel() for p in module.parameters())
        self._record(frame.name, op, params, x, y, [x] if x is not None else [])

    # functional ops
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        entry = _FUNCTIONAL.get(func) if self.counted_depth == 0 else None
        if entry is None:
            return out
        kind, macs_fn = entry
        parent = self.stack[-1] if self.stack else self.outside
        index = parent.op_index.get(kind, 0)
        parent.op_index[kind] = index + 1
        name = f"{parent.name}.{kind}#{index}" if parent.name else f"{kind}#{index}"
        acts, weights = _operands(kind, args, kwargs)
        op = OpCount(
            kind=kind,
            macs=int(macs_fn(args, kwargs, out)),
            weight_elems=sum(w.numel() for w in weights),
        )
        if kind in _WEIGHTED:
            w = weights[0]
            geometry = {"out_channels": int(w.shape[0]), "in_channels": int(w.shape[1])}
            if kind.startswith("conv"):
                groups = _groups(args, kwargs)
                geometry.update(
                    in_channels=int(w.shape[1]) * groups,
                    kernel=tuple(int(k) for k in w.shape[2:]),
                    groups=groups,
                )
            op = replace(op, **geometry)
        params = sum(t.numel() for t in _flatten(args, kwargs) if isinstance(t, nn.Parameter))
        self._record(name, op, params, acts[0] if acts else None, _first_tensor(out), acts)
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


def _groups(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    return int(args[6]) if len(args) > 6 else int(kwargs.get("groups", 1))


_WEIGHTED = ("linear", "conv1d", "conv2d", "conv3d")


def _operands(
    kind: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(activation operands, weight operands) of a functional op; additive terms are neither.

    For linear/conv the second argument is the weight; for products, nn.Parameter operands are
    weights and everything else is an activation.
    """
    if kind in _WEIGHTED:
        x = args[0] if args else kwargs["input"]
        w = args[1] if len(args) > 1 else kwargs["weight"]
        return [x], [w]
    tensors = list(_flatten(args[1:] if kind in ("addmm", "baddbmm") else args, kwargs))
    if kind in ("addmm", "baddbmm"):
        tensors = [t for t in tensors if t is not kwargs.get("input")]
    tensors = [t for t in tensors if isinstance(t, torch.Tensor)]
    weights = [t for t in tensors if isinstance(t, nn.Parameter)]
    acts = [t for t in tensors if not isinstance(t, nn.Parameter)]
    return acts, weights


def _flatten(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Iterator[Any]:
    for item in (*args, *kwargs.values()):
        if isinstance(item, (list, tuple)):
            yield from item
        else:
            yield item


@contextmanager
def _hooked(model: nn.Module, counter: _Counter) -> Iterator[None]:
    handles = []
    try:
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(counter.pre_hook))
            handles.append(module.register_forward_hook(counter.post_hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _input_like(model: nn.Module, shape: tuple[int, ...], dtype: torch.dtype | None):
    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    if dtype is None:
        dtype = ref.dtype if ref is not None else torch.float32
    device = ref.device if ref is not None else torch.device("cpu")
    return torch.zeros(shape, dtype=dtype, device=device)


def count_ops(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int = 1,
    *,
    dtype: torch.dtype | None = None,
) -> CostReport:
    """Count per-sample MACs, parameters and activation sizes of `model` layer by layer.

    Runs the model once on zeros of shape ``(batch_size, *input_shape)`` in eval mode under
    ``torch.no_grad`` and restores its training mode. See the module docstring for how each
    operation is counted.
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
    counter = _Counter(model, batch)
    x = _input_like(model, (batch, *shape), dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _hooked(model, counter), counter:
            model(x)
    except (RuntimeError, ValueError, IndexError) as err:
        raise ShapeError(
            f"model {type(model).__name__} failed on input of shape {(batch, *shape)} "
            f"(input_shape={shape!r}): {err}"
        ) from err
    finally:
        model.train(was_training)
    seen: set[int] = set()
    total_params = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total_params += p.numel()
    return CostReport(
        layers=list(counter.records.values()),
        total_params=total_params,
        input_shape=shape,
        batch_size=batch,
        model=type(model).__name__,
    )
