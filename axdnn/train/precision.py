"""Reduced-precision training: weights, activations saved for backward, and gradients held in a
chosen number format (e.g. fp16 with k mantissa LSBs truncated, PCM, Kim et al., DATE 2020; or
8-bit fixed point / fp8 with stochastic rounding, Gupta et al. 2015), per tensor kind and per
layer (`TrainPrecision`), applied to a model by a `PrecisionSession`.

What each kind means, per training step:

- `weights`: the copy of the weights forward and backward read. With `master_weights` (default,
  mixed precision) an fp32 master copy takes the update and the rounded copy is used for the step;
  without it the stored weights themselves are rounded after every update.
- `activations`: every tensor autograd saves for backward inside the layer (through
  `torch.autograd.graph.saved_tensors_hooks`), rounded when saved (fp16/bf16 formats are stored
  in that dtype), restored to the working dtype when backward reads it.
- `gradients`: the error gradient arriving at each layer's output and its weight gradients.

`scaling="tensor"` divides each tensor by a power of two that brings max|x| inside the format's
range before rounding and multiplies back after (dynamic fixed point), so fixed-point formats such
as `fxp:s1.7` serve tensors of any magnitude.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn

from axdnn.errors import ConfigError, FormatError
from axdnn.formats import FixedPoint, FloatFormat, Format, Identity, parse_format

KINDS = ("weights", "activations", "gradients")
SCALINGS = ("none", "tensor")
_STORAGE = {(5, 10, False): torch.float16, (8, 7, False): torch.bfloat16}


def _check_spec(spec: str | None, where: str) -> None:
    if spec is None:
        return
    try:
        parse_format(spec)
    except FormatError as err:
        raise ConfigError(f"{where}: {err}") from err


@dataclass(frozen=True)
class KindFormats:
    """Format spec per tensor kind; None keeps that kind at the model's own precision (fp32)."""

    weights: str | None = None
    activations: str | None = None
    gradients: str | None = None

    def get(self, kind: str) -> str | None:
        return getattr(self, kind)


@dataclass(frozen=True)
class TrainPrecision:
    """Which format each tensor kind is held in during training, with per-layer overrides.

    `layers` maps module-name globs (fnmatch, first match wins) to {kind: spec} overrides; a
    spec `fp32` keeps that kind exact in those layers."""

    weights: str | None = None
    activations: str | None = None
    gradients: str | None = None
    layers: dict[str, dict[str, str]] = field(default_factory=dict)
    scaling: str = "none"
    master_weights: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for kind in KINDS:
            _check_spec(getattr(self, kind), f"training precision {kind}")
        if self.scaling not in SCALINGS:
            raise ConfigError(
                f"training precision scaling {self.scaling!r} is unknown; "
                f"expected one of {SCALINGS}"
            )
        if not isinstance(self.layers, Mapping):
            raise ConfigError(
                f"training precision layers must map layer globs to {{kind: spec}}, got "
                f"{type(self.layers).__name__}"
            )
        for glob, overrides in self.layers.items():
            if not isinstance(overrides, Mapping):
                raise ConfigError(
                    f"training precision layer {glob!r}: expected a mapping of kinds "
                    f"{KINDS} to format specs, got {overrides!r}"
                )
            for kind, spec in overrides.items():
                if kind not in KINDS:
                    raise ConfigError(
                        f"training precision layer {glob!r}: kind {kind!r} is unknown; "
                        f"expected one of {KINDS}"
                    )
                _check_spec(spec, f"training precision layer {glob!r} {kind}")

    @classmethod
    def truncated(cls, bits: int, base: str = "fp16", **kwargs) -> TrainPrecision:
        """All three kinds in `base` (fp16/bf16) with `bits` mantissa LSBs truncated (PCM)."""
        spec = f"{base},trunc={bits}" if bits else base
        return cls(weights=spec, activations=spec, gradients=spec, **kwargs)

    @classmethod
    def uniform(cls, spec: str, **kwargs) -> TrainPrecision:
        """All three kinds in one format, e.g. `fxp:s1.7,round=stochastic` with tensor scaling."""
        return cls(weights=spec, activations=spec, gradients=spec, **kwargs)

    @property
    def active(self) -> bool:
        """Whether anything is held below fp32."""
        specs = [getattr(self, k) for k in KINDS]
        specs += [s for o in self.layers.values() for s in o.values()]
        return any(s is not None and s != "fp32" for s in specs)

    def for_layer(self, name: str) -> KindFormats:
        """The spec of each kind in the layer called `name`."""
        chosen = {k: getattr(self, k) for k in KINDS}
        for glob, overrides in self.layers.items():
            if fnmatch.fnmatchcase(name, glob):
                chosen.update(overrides)
                break
        return KindFormats(**chosen)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> TrainPrecision:
        """Build from a plain mapping (YAML/JSON); unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"training precision must be a mapping, got {type(data).__name__}: {data!r}"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"training precision: unknown key(s) {unknown}; accepted: {sorted(known)}"
            )
        return cls(**dict(data))


# ---------------------------------------------------------------------------------------------
# Rounding one tensor


def _range_max(fmt: Format) -> float:
    if isinstance(fmt, (FloatFormat, FixedPoint)):
        return float(fmt.max_value)
    return math.inf


def _is_plain_cast(fmt: Format) -> bool:
    """Whether `fmt` rounds exactly as torch's fp16/bf16 cast does (then masks `trunc` bits)."""
    return (
        isinstance(fmt, FloatFormat)
        and fmt.rounding == "nearest_even"
        and fmt.subnormals
        and fmt.overflow == "inf"
        and fmt.bias == fmt.default_bias
    )


class TensorRounder:
    """Rounds tensors to one format (optionally tensor-scaled), drawing stochastic-rounding noise
    from a generator the session owns, so that a run is reproducible from its seed."""

    def __init__(self, spec: str, scaling: str, generator: torch.Generator) -> None:
        self.spec, self.format = spec, parse_format(spec)
        self.exact = isinstance(self.format, Identity)
        self.scaling, self.generator = scaling, generator
        self.bits = int(self.format.bits)
        key = (
            (self.format.exp_bits, self.format.man_bits, self.format.fn)
            if isinstance(self.format, FloatFormat)
            else None
        )
        native = _STORAGE.get(key)
        self.storage = native if scaling == "none" else None
        self.max_value = _range_max(self.format)
        self._cast = native if native is not None and _is_plain_cast(self.format) else None
        self._mask = ~((1 << self.format.trunc) - 1) if self._cast is not None else 0

    def _scale(self, x: Tensor) -> Tensor | None:
        if self.scaling == "none" or not math.isfinite(self.max_value):
            return None
        amax = x.detach().abs().amax().float()
        if not torch.isfinite(amax) or amax == 0:
            return None
        return torch.exp2(torch.ceil(torch.log2(amax / self.max_value)))

    def round(self, x: Tensor) -> Tensor:
        """`x` rounded to the format, in x's dtype (no gradient)."""
        if self.exact or not x.is_floating_point():
            return x
        scale = self._scale(x)
        src = x.detach() if scale is None else x.detach() / scale.to(x.dtype)
        y = self._cast_round(src) if self._cast is not None else None
        y = self.format.quantize(src, generator=self.generator) if y is None else y.to(x.dtype)
        return y if scale is None else y * scale.to(y.dtype)

    def _cast_round(self, x: Tensor) -> Tensor | None:
        """fp16/bf16 with nearest-even rounding as torch's cast, then the `trunc` mantissa LSBs
        of finite values masked off: the same bits as `FloatFormat.round_values`, in far fewer
        tensor ops (tested against it). None for inputs the cast does not cover."""
        if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            return None
        h = x.to(self._cast)
        if not self._mask + 1:  # trunc = 0
            return h
        cut = (h.view(torch.int16) & self._mask).view(self._cast)
        if self.format.trunc < self.format.man_bits:  # the quiet-NaN bit survives the mask
            return cut
        return torch.where(torch.isfinite(h), cut, h)

    def pack(self, x: Tensor) -> Tensor:
        """The rounded tensor in its storage dtype (fp16/bf16 where the format is one)."""
        if self.storage is not None and x.is_floating_point():
            y = self._cast_round(x.detach()) if self._cast is not None else None
            return self.round(x).to(self.storage) if y is None else y
        return self.round(x)


# ---------------------------------------------------------------------------------------------
# Traffic counters


@dataclass
class KindTraffic:
    """Values of one kind moved to or from memory, and the bits they took."""

    values: int = 0
    bits: int = 0

    def add(self, values: int, bits: int) -> None:
        self.values += int(values)
        self.bits += int(values) * int(bits)


@dataclass
class Traffic:
    """Values written/read per kind over the counted steps (a training run's memory traffic)."""

    kinds: dict[str, KindTraffic] = field(default_factory=lambda: {k: KindTraffic() for k in KINDS})
    steps: int = 0

    def add(self, kind: str, values: int, bits: int) -> None:
        self.kinds[kind].add(values, bits)

    def to_dict(self) -> dict:
        return {"steps": self.steps, "kinds": {k: asdict(v) for k, v in self.kinds.items()}}


# ---------------------------------------------------------------------------------------------
# Applying a precision to a model


def _leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if n and not list(m.children())]


class PrecisionSession:
    """A `TrainPrecision` attached to one model: hooks that round saved activations and
    gradients, the weight rounding around each step, and the traffic those tensors make.

    Traffic counted per step (ideal reuse, each value at its stored width): weights read in
    forward and in backward and written once after the update (3 x parameters); saved
    activations written in forward and read in backward (2 x; a tensor two layers save, such as
    a ReLU's output that the next layer saves as its input, is stored and counted once);
    gradients written and read once each (2 x, layer-output error gradients and weight
    gradients)."""

    def __init__(self, model: nn.Module, precision: TrainPrecision, *, rank: int = 0) -> None:
        self.model, self.precision = model, precision
        self.traffic = Traffic()
        self.reference = Traffic()  # the same values at 32 bits
        self._weight_gen = torch.Generator().manual_seed(precision.seed)
        self._data_gen = torch.Generator().manual_seed(precision.seed * 1009 + 17 + rank)
        self._rounders: dict[tuple[str, str], TensorRounder] = {}
        self._handles: list = []
        self._param_ptrs: set[int] = set()
        self._params: list[tuple[nn.Parameter, TensorRounder | None]] = []
        self._saved: dict[tuple, tuple] = {}
        self._in_step = False
        self._attach()

    def rounder(self, spec: str | None, kind: str) -> TensorRounder | None:
        if spec is None:
            return None
        key = (spec, kind)
        if key not in self._rounders:
            gen = self._weight_gen if kind == "weights" else self._data_gen
            self._rounders[key] = TensorRounder(spec, self.precision.scaling, gen)
        return self._rounders[key]

    def _count(self, kind: str, values: int, rounder: TensorRounder | None, times: int) -> None:
        self.traffic.add(kind, values * times, rounder.bits if rounder else 32)
        self.reference.add(kind, values * times, 32)

    # ---- hooks ------------------------------------------------------------------------------
    def _saved_hooks(self, rounder: TensorRounder | None):
        def pack(t: Tensor):
            if not t.is_floating_point() or t.data_ptr() in self._param_ptrs:
                return t  # integer indices, or a weight (counted with the weights)
            key = (t.data_ptr(), t.shape, t.stride(), t._version, t.dtype)
            if key in self._saved:  # saved before in this step (a ReLU's output is the next
                return self._saved[key][1]  # layer's input): stored once, in the first format
            self._count("activations", t.numel(), rounder, 2)
            packed = (t.dtype, rounder.pack(t)) if rounder is not None else t
            if self._in_step:  # `t` kept alive until the step ends: its address is not reused
                self._saved[key] = (t, packed)
            return packed

        def unpack(packed):
            return packed[1].to(packed[0]) if isinstance(packed, tuple) else packed

        return torch.autograd.graph.saved_tensors_hooks(pack, unpack)

    def _attach(self) -> None:
        seen: set[int] = set()
        for name, module in _leaf_modules(self.model):
            formats = self.precision.for_layer(name)
            act = self.rounder(formats.activations, "activations")
            grad = self.rounder(formats.gradients, "gradients")
            weight = self.rounder(formats.weights, "weights")
            self._hook_module(module, act, grad)
            for p in module.parameters(recurse=False):
                if id(p) in seen or not p.requires_grad:
                    continue
                seen.add(id(p))
                self._params.append((p, weight))
                self._handles.append(p.register_hook(self._param_grad_hook(grad)))
        self._root = self.rounder(self.precision.activations, "activations")

    def _hook_module(
        self, module: nn.Module, act: TensorRounder | None, grad: TensorRounder | None
    ) -> None:
        stack: list = []

        def pre(_m, _inputs):
            ctx = self._saved_hooks(act)
            ctx.__enter__()
            stack.append(ctx)

        def post(_m, _inputs, output):
            stack.pop().__exit__(None, None, None)
            if not (isinstance(output, Tensor) and output.requires_grad):
                return output
            self._count("gradients", output.numel(), grad, 2)  # its error gradient, later
            if grad is not None:
                output.register_hook(grad.round)  # rounds the gradient reaching this output
            return output

        self._handles.append(module.register_forward_pre_hook(pre))
        self._handles.append(module.register_forward_hook(post))

    def _param_grad_hook(self, rounder: TensorRounder | None):
        def hook(g: Tensor) -> Tensor:
            self._count("gradients", g.numel(), rounder, 2)
            return rounder.round(g) if rounder is not None else g

        return hook

    # ---- the step ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """Forward and backward inside: weights rounded (master copy kept), activations and
        gradients rounded as they are saved and as they flow."""
        self._param_ptrs = {p.data_ptr() for p, _ in self._params}
        masters = []
        for p, rounder in self._params:
            self._count("weights", p.numel(), rounder, 3)
            if rounder is not None and self.precision.master_weights:
                masters.append((p, p.detach().clone()))
                with torch.no_grad():
                    p.copy_(rounder.round(p))
        self.traffic.steps += 1
        self.reference.steps += 1
        self._in_step = True
        try:
            with self._saved_hooks(self._root):
                yield
        finally:
            self._in_step = False
            self._saved.clear()
            with torch.no_grad():
                for p, master in masters:
                    p.copy_(master)

    @torch.no_grad()
    def after_update(self) -> None:
        """Without master weights, round the stored weights after the optimizer's update."""
        if self.precision.master_weights:
            return
        for p, rounder in self._params:
            if rounder is not None:
                p.copy_(rounder.round(p))

    def detach(self) -> None:
        """Remove every hook from the model."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def precision_from_options(
    *,
    base: Mapping | None = None,
    truncate: int | None = None,
    train_format: str | None = None,
    kinds: Mapping[str, str | None] | None = None,
    scaling: str | None = None,
    master_weights: bool | None = None,
    seed: int = 0,
) -> TrainPrecision | None:
    """A `TrainPrecision` from command-line style options, None when none asks for one. Later
    wins: `base` (a TrainPrecision mapping, e.g. from YAML), then `truncate` (fp16 with that many
    mantissa LSBs cut) or `train_format` (one spec for every kind), then `kinds` (spec per kind)."""
    if truncate is not None and train_format is not None:
        raise ConfigError(
            f"give either truncate ({truncate}) or train_format ({train_format!r}), not both: "
            "truncate k means train_format 'fp16,trunc=k'"
        )
    settings = dict(base or {})
    if truncate is not None:
        train_format = f"fp16,trunc={truncate}" if truncate else "fp16"
    if train_format is not None:
        settings.update(dict.fromkeys(KINDS, train_format))
    settings.update({k: v for k, v in (kinds or {}).items() if v is not None})
    if scaling is not None:
        settings["scaling"] = scaling
    if master_weights is not None:
        settings["master_weights"] = master_weights
    if not settings:
        return None
    settings.setdefault("seed", seed)
    return TrainPrecision.from_dict(settings)


def read_precision_file(path) -> dict:
    """The TrainPrecision mapping a YAML (or JSON) file holds; ConfigError names the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"training precision file {path}: cannot read it ({err})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"training precision file {path}: not valid YAML ({err})") from err
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"training precision file {path}: expected a mapping with keys weights, activations, "
            f"gradients, layers, scaling, master_weights; got {type(data).__name__}"
        )
    try:
        TrainPrecision.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"training precision file {path}: {err}") from err
    return dict(data)
