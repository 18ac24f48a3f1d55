"""Error models: what a fault does to the values it hits.

Every model maps a block of values `(n, m)` (one row per trial, `m` elements of that trial's
region) to corrupted values of the same shape, drawing its randomness from `Draws`, which is a
pure function of (campaign seed, trial index), so a trial is reproducible in any batch grouping.

Scope: `element` models (bit flips, stuck-at, value replacement) hit one element per trial;
`all` models (noise, quantization, component noise) hit every element of the site region. Noise
magnitudes are absolute or relative to a statistic of the region of the same sample, named
explicitly by `relative_to` (`absolute`, `std`, `max_abs`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
import torch

from axdnn.errors import InjectionError
from axdnn.inject.bits import apply_bits, format_width, int_scale
from axdnn.inject.rng import element_uniform, trial_generator, trial_uniform

SCOPES = ("element", "all")
RELATIVE = ("absolute", "std", "max_abs")
MODEL_STREAM = 16  # first rng stream an error model may use (lower ones pick site/sample/element)
SMALL_REGION = 4096  # regions up to this size draw noise from the counter-based hash


class StreamCache:
    """Uniform streams of a whole block of trials, computed once and sliced per forward.
    `streams` may hold some already drawn (stream -> `trial_uniform(seed, trials, MODEL_STREAM
    + stream)`), e.g. computed in one pass with the campaign's own streams."""

    def __init__(
        self, seed: int, trials: np.ndarray, streams: dict[int, np.ndarray] | None = None
    ) -> None:
        self.seed = seed
        self.trials = np.asarray(trials, dtype=np.int64)
        self.streams: dict[int, np.ndarray] = dict(streams or {})

    def get(self, stream: int) -> np.ndarray:
        if stream not in self.streams:
            self.streams[stream] = trial_uniform(self.seed, self.trials, MODEL_STREAM + stream)
        return self.streams[stream]


class Draws:
    """Per-trial random draws and region statistics for the faulty rows of one forward.

    With a `cache` (the block's StreamCache) and the rows' `positions` in the block (None: all
    of the cache's trials, in its order), uniform streams are sliced from the cache instead of
    hashed again; the numbers are the same.
    `inputs` holds the faulty rows of the module's input, for models that condition on it
    (`ErrorModel.needs_input`, output sites only).
    """

    def __init__(
        self,
        seed: int,
        trials: np.ndarray,
        region: torch.Tensor | None = None,
        cache: StreamCache | None = None,
        positions: np.ndarray | None = None,
        inputs: torch.Tensor | None = None,
    ) -> None:
        self.seed = seed
        self.trials = np.asarray(trials, dtype=np.int64)
        self.region = region
        self.cache = cache
        self.positions = positions
        self.inputs = inputs
        self._stats: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.trials)

    def uniform_np(self, stream: int) -> np.ndarray:
        """(n,) float64 uniforms in [0, 1) of one stream, as numpy (cheap for small n)."""
        if self.cache is not None:
            u = self.cache.get(stream)
            return u if self.positions is None else u[self.positions]
        return trial_uniform(self.seed, self.trials, MODEL_STREAM + stream)

    def uniform(self, stream: int, k: int = 1) -> torch.Tensor:
        """(n, k) float64 uniforms in [0, 1), streams `stream .. stream + k - 1`."""
        if self.cache is not None:
            every = slice(None) if self.positions is None else self.positions
            cols = [self.cache.get(stream + j)[every] for j in range(k)]
        else:
            cols = [
                trial_uniform(self.seed, self.trials, MODEL_STREAM + stream + j) for j in range(k)
            ]
        if k == 1:
            return torch.from_numpy(cols[0]).reshape(-1, 1)
        return torch.from_numpy(np.stack(cols, axis=1))

    def normal(self, m: int, stream: int) -> torch.Tensor:
        """(n, m) float32 standard normals: Box-Muller on counter-based uniforms (one per trial
        and element) for small regions, else one seeded generator per trial."""
        if m == 1:
            u = self.uniform(stream, 2)
            z = torch.sqrt(-2.0 * torch.log1p(-u[:, 0])) * torch.cos(2 * math.pi * u[:, 1])
            return z.to(torch.float32).reshape(-1, 1)
        if m <= SMALL_REGION:
            u1 = element_uniform(self.seed, self.trials, MODEL_STREAM + stream, m)
            u2 = element_uniform(self.seed, self.trials, MODEL_STREAM + stream + 1, m)
            z = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2 * math.pi * u2)
            return torch.from_numpy(z.astype(np.float32))
        rows = [
            torch.randn(m, generator=trial_generator(self.seed, int(t), MODEL_STREAM + stream))
            for t in self.trials
        ]
        return torch.stack(rows) if rows else torch.zeros(0, m)

    def stat(self, name: str) -> torch.Tensor:
        """(n, 1) statistic of each row's region: `std` (population) or `max_abs`."""
        if name not in self._stats:
            if self.region is None:
                raise InjectionError(f"region statistic {name!r} asked for without a region")
            r = self.region.detach().float()
            if name == "std":
                value = r.std(dim=1, correction=0, keepdim=True)
            elif name == "max_abs":
                value = r.abs().amax(dim=1, keepdim=True)
            else:
                raise InjectionError(f"unknown region statistic {name!r}; expected std or max_abs")
            self._stats[name] = value
        return self._stats[name]


@dataclass(frozen=True)
class ErrorModel(ABC):
    """What a fault does to the values it hits (see the module docstring)."""

    kind: ClassVar[str] = ""
    default_scope: ClassVar[str] = "element"

    @abstractmethod
    def corrupt(self, values: torch.Tensor, draws: Draws) -> torch.Tensor:
        """Corrupted copy of `values` (n, m)."""

    def needs_region(self) -> bool:
        """Whether `corrupt` reads statistics of the site region."""
        return False

    def needs_input(self) -> bool:
        """Whether `corrupt` reads the input of the module whose output it corrupts
        (`Draws.inputs`); such models can only sit at a module's output."""
        return False

    def replacement(self, draws: Draws) -> torch.Tensor | None:
        """For models whose single-element result does not depend on the old value: the new
        values (n,) for the draws' trials, so campaigns can compute a whole block at once."""
        return None

    @property
    def spec(self) -> str:
        """Spec string that `parse_error_model` turns back into this model."""
        parts = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if f.repr and getattr(self, f.name) is not None
        ]
        return ",".join([self.kind, *parts])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {"kind": self.kind, "spec": self.spec, **asdict(self)}


def _bit_masks(draws: Draws, width: int, bit: int | None, count: int) -> torch.Tensor:
    """(n, 1) int64 masks with `count` distinct bits: the chosen `bit`, or random ones."""
    if bit is not None:
        return torch.full((len(draws), 1), 1 << bit, dtype=torch.int64)
    if count == 1:
        picks = (draws.uniform(0)[:, :1] * width).long().clamp(max=width - 1)
        return torch.ones_like(picks) << picks
    keys = draws.uniform(0, width)
    chosen = keys.argsort(dim=1)[:, :count]
    return (torch.ones_like(chosen) << chosen).sum(dim=1, keepdim=True)


@dataclass(frozen=True)
class _BitModel(ErrorModel):
    fmt: str = "float32"
    bit: int | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        width = format_width(self.fmt)
        if self.bit is not None and not 0 <= self.bit < width:
            raise InjectionError(
                f"{self.kind}: bit {self.bit} is outside 0..{width - 1} for format {self.fmt!r}"
            )
        if self.scale is not None and not self.scale > 0:
            raise InjectionError(f"{self.kind}: scale must be > 0, got {self.scale}")

    def needs_region(self) -> bool:
        return not self.fmt.startswith("float") and self.scale is None

    def _scale(self, draws: Draws) -> torch.Tensor | None:
        if self.fmt.startswith("float"):
            return None
        if self.scale is not None:
            return torch.tensor(self.scale, dtype=torch.float32)
        return int_scale(draws.stat("max_abs"), self.fmt)

    def _apply(self, values: torch.Tensor, draws: Draws, op: str, count: int) -> torch.Tensor:
        mask = _bit_masks(draws, format_width(self.fmt), self.bit, count)
        return apply_bits(values, self.fmt, mask, op, self._scale(draws))


@dataclass(frozen=True)
class BitFlip(_BitModel):
    """Flip `count` bits (the chosen `bit`, or distinct random ones) of the value's representation
    in `fmt`: float32/float16 bits, or an intN/uintN code with step `scale` (default: per sample,
    max|x| of the site region over the format's largest code)."""

    kind: ClassVar[str] = "bitflip"
    count: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        width = format_width(self.fmt)
        if not 1 <= self.count <= width or (self.bit is not None and self.count != 1):
            raise InjectionError(
                f"bitflip: count={self.count} is invalid; expected 1..{width} random bits, or 1 "
                "with a chosen bit"
            )

    def corrupt(self, values: torch.Tensor, draws: Draws) -> torch.Tensor:
        return self._apply(values, draws, "flip", self.count)


@dataclass(frozen=True)
class StuckAt(_BitModel):
    """Force one bit (chosen or random) of the representation in `fmt` to `level` (0 or 1)."""

    kind: ClassVar[str] = "stuck"
    level: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.level not in (0, 1):
            raise InjectionError(f"stuck-at level must be 0 or 1, got {self.level!r}")

    def corrupt(self, values: torch.Tensor, draws: Draws) -> torch.Tensor:
        return self._apply(values, draws, "set" if self.level else "clear", 1)


@dataclass(frozen=True)
class ValueReplace(ErrorModel):
    """Replace the value with a constant (PyTorchFI's `declare_neuron_fi(value=...)`)."""

    kind: ClassVar[str] = "value"
    value: float = 0.0

    def corrupt(self, values: torch.Tensor, draws: Draws) -> torch.Tensor:
        return values.new_full(values.shape, self.value)

    def replacement(self, draws: Draws) -> torch.Tensor:
        return torch.full((len(draws),), self.value, dtype=torch.float32)


@dataclass(frozen=True)
class RandomValue(ErrorModel):
    """Replace the value with a uniform draw from [low, high) (PyTorchFI's `random_value`)."""

    kind: ClassVar[str] = "random"
    low: float = -1.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise InjectionError(f"random: need low < high, got low={self.low}, high={self.high}")

    def corrupt(self, values: torch.Tensor, draws: Draws) -> torch.Tensor:
        m = values.shape[1]
        if m == 1:
            return self.replacement(draws).reshape(-1, 1).to(values.dtype)
        return (self.low + (self.high - self.low) * _uniform_rows(draws, m)).to(values.dtype)

    def replacement(self, draws: Draws) -> torch.Tensor:
        u = draws.uniform_np(0)
        return torch.from_numpy((self.low + (self.high - self.low) * u).astype(np.float32))


def _uniform_rows(draws: Draws, m: int) -> torch.Tensor:
    rows = [
        torch.rand(m, generator=trial_generator(draws.seed, int(t), MODEL_STREAM + 7))
        for t in draws.trials
    ]
    return torch.stack(rows)


@dataclass(frozen=True)
class AdditiveNoise(ErrorModel):
    """Add noise with the given mean and std, both in units of `relative_to`: `absolute` (the
    numbers as given), `std` or `max_abs` of the site region of the same sample. `uniform` noise
    is centred uniform with that std (half-width std * sqrt(3))."""

    kind: ClassVar[str] = "gaussian"
    default_scope: ClassVar[str] = "all"
    std: float = 0.1
    mean: float = 0.0
    relative_to: str = "absolute"

    def __post_init__(self) -> None:
        if self.relative_to not in RELATIVE:
            raise InjectionError(
                f"{self.kind}: relative_to={self.relative_to!r}; expected one of {RELATIVE}"
            )
        if not self.std >= 0 or not math.isfinite(self.std) or not math.isfinite(self.mean):
            raise InjectionError(f"{self.kind}: std must be finite and >= 0, got {self.std}")

    def needs_region(self) -> bool:
        return self.relative_to != "absolute"

    def _unit_noise(self, n: int, m: int, draws: Draws) -> torch.Tensor:
        return draws.normal(m, 1)

    def corrupt(self, values: torch.Tensor, draws: Draws) -> torch.Tensor:
        noise = self.mean + self.std * self._unit_noise(len(draws), values.shape[1], draws)
        if self.relative_to != "absolute":
            noise = noise * draws.stat(self.relative_to)
        return values + noise.to(values.dtype)


@dataclass(frozen=True)
class UniformNoise(AdditiveNoise):
    """AdditiveNoise with a centred uniform distribution of the given std."""

    kind: ClassVar[str] = "uniform"

    def _unit_noise(self, n: int, m: int, draws: Draws) -> torch.Tensor:
        u = draws.uniform(2, 1) if m == 1 else _uniform_rows(draws, m).double()
        return ((u * 2 - 1) * math.sqrt(3.0)).float()


@dataclass(frozen=True)
class Quantize(ErrorModel):
    """Pass the values through a number format (any `axdnn.formats` spec, e.g. `int4`,
    `fxp:s3.4,round=toward_zero`, `float:e4m3,trunc=2`): quantization or truncation error."""

    kind: ClassVar[str] = "quantize"
    default_scope: ClassVar[str] = "all"
    format: str = "int8"

    def __post_init__(self) -> None:
        self._format()

    def _format(self):
        from axdnn.errors import FormatError
        from axdnn.formats import parse_format

        try:
            return parse_format(self.format)
        except FormatError as err:
            raise InjectionError(f"quantize: {err}") from None

    @property
    def spec(self) -> str:
        return f"quantize:{self.format}"

    def corrupt(self, values: torch.Tensor, draws: Draws) -> torch.Tensor:
        return self._format().quantize(values).to(values.dtype)


@dataclass(frozen=True)
class Clamp(ErrorModel):
    """Saturate values to [low, high], as an integer datapath does at its calibrated range."""

    kind: ClassVar[str] = "clamp"
    default_scope: ClassVar[str] = "all"
    low: float = -1.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not self.high >= self.low:
            raise InjectionError(f"clamp: need low <= high, got low={self.low}, high={self.high}")

    def corrupt(self, values: torch.Tensor, draws: Draws) -> torch.Tensor:
        return values.clamp(self.low, self.high)


@dataclass(frozen=True, eq=False)
class ComponentNoise(ErrorModel):
    """Gaussian noise with a per-element mean and std (flattened like the site region): the error
    an approximate component adds to each output, from `axdnn.inject.component`."""

    kind: ClassVar[str] = "component"
    default_scope: ClassVar[str] = "all"
    mean: torch.Tensor = field(default_factory=lambda: torch.zeros(1), repr=False)
    std: torch.Tensor = field(default_factory=lambda: torch.zeros(1), repr=False)
    label: str = ""

    def corrupt(self, values: torch.Tensor, draws: Draws) -> torch.Tensor:
        m = values.shape[1]
        if self.mean.numel() != m:
            raise InjectionError(
                f"component noise {self.label!r} has {self.mean.numel()} elements but the site "
                f"region has {m}; inject it at the output of the layer it was derived for"
            )
        z = draws.normal(m, 3)
        return values + self.mean.reshape(1, -1) + self.std.reshape(1, -1) * z

    @property
    def spec(self) -> str:
        return f"component:{self.label}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "spec": self.spec,
            "label": self.label,
            "mean_of_mean": float(self.mean.mean()),
            "mean_of_std": float(self.std.mean()),
        }


MODELS: dict[str, type[ErrorModel]] = {
    "bitflip": BitFlip,
    "stuck0": StuckAt,
    "stuck1": StuckAt,
    "stuck": StuckAt,
    "value": ValueReplace,
    "random": RandomValue,
    "gaussian": AdditiveNoise,
    "uniform": UniformNoise,
    "quantize": Quantize,
    "clamp": Clamp,
}
_POSITIONAL = {
    "bitflip": "fmt",
    "stuck0": "fmt",
    "stuck1": "fmt",
    "stuck": "fmt",
    "value": "value",
    "gaussian": "std",
    "uniform": "std",
}
_ALIASES = {"rel": "relative_to", "format": "fmt", "lo": "low", "hi": "high"}
FORMS = (
    "bitflip[:FMT][,bit=N][,count=K][,scale=S]  (FMT float32|float16|intN|uintN)",
    "stuck0|stuck1[:FMT][,bit=N][,scale=S]",
    "value:V",
    "random[,low=L][,high=H]",
    "gaussian|uniform[:STD][,mean=M][,rel=absolute|std|max_abs]",
    "quantize:FORMAT  (any axdnn.formats spec)",
    "clamp,low=L,high=H",
)


def parse_error_model(text: str | ErrorModel) -> ErrorModel:
    """Turn a spec string (see FORMS) into an ErrorModel; errors name the bad part."""
    if isinstance(text, ErrorModel):
        return text
    if not isinstance(text, str) or not text.strip():
        raise InjectionError(f"empty error model {text!r}; expected one of: {'; '.join(FORMS)}")
    head, _, rest = text.strip().partition(":")
    head, _, first_opts = head.partition(",")
    kind = head.strip().lower()
    if kind not in MODELS:
        raise InjectionError(
            f"unknown error model {kind!r} in {text!r}; expected one of: {'; '.join(FORMS)}"
        )
    if kind == "quantize":
        if not rest:
            raise InjectionError(
                f"error model {text!r}: quantize needs a format, e.g. quantize:int4"
            )
        return Quantize(rest.strip())
    items = [p for p in f"{first_opts},{rest}".split(",") if p.strip()]
    if first_opts and rest:
        raise InjectionError(
            f"error model {text!r}: put options after the argument, e.g. gaussian:0.1,rel=std"
        )
    kwargs: dict[str, Any] = {}
    if kind in ("stuck0", "stuck1"):
        kwargs["level"] = int(kind[-1])
    cls = MODELS[kind]
    known = {f.name: f for f in fields(cls)}
    for i, item in enumerate(items):
        key, eq, value = item.partition("=")
        if not eq:
            if i != 0 or kind not in _POSITIONAL:
                raise InjectionError(f"error model {text!r}: {item!r} needs the form key=value")
            key, value = _POSITIONAL[kind], item
        key = _ALIASES.get(key.strip(), key.strip())
        if key not in known:
            raise InjectionError(
                f"error model {text!r}: unknown option {key!r}; {kind} takes {', '.join(known)}"
            )
        kwargs[key] = _convert(value.strip(), key, text)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise InjectionError(f"error model {text!r}: {err}") from None


def _convert(value: str, key: str, text: str) -> Any:
    if key in ("fmt", "relative_to"):
        return value
    try:
        if key in ("bit", "count", "level"):
            return int(value)
        return float(value)
    except ValueError:
        raise InjectionError(f"error model {text!r}: {key}={value!r} is not a number") from None
