"""Plans: which hardware each layer runs on, as an ordered map from layer-name globs to LayerSpecs.

For every layer the *last* pattern that matches it decides (later, more specific entries override
earlier, broader ones). A LayerSpec with `multiplier: null` and no formats keeps the layer in
float.

    layers:
      "*":  {multiplier: "drum:4@u8", gradient: table}
      "fc": {multiplier: null}

Per-layer precision: `weight_format` / `act_format` (spec strings of `axdnn.formats`, e.g.
`fxp:s2.6`, `fpec:s2.4,c=1`, `fp8_e4m3`, `pact:4`, `ternary`) put the layer in number formats
computed in float (FormatConv2d / FormatLinear). A multiplier fixes the integer operand domain
itself (its a_bits/b_bits and signedness, with observer-calibrated scales), so a format beside a
multiplier is an error rather than a second, conflicting description of the same operands.

Typed specs: a LayerSpec is a set of typed parts, at most one per slot (`MultiplierSpec` or
`FormatSpec` in slot "compute"; other rooms register more with `register_spec_part`). Files stay
flat (`{multiplier: drum:4, gradient: table}`): each part owns its keys, and a LayerSpec folds
the flat keys into parts on load and flattens them again on save. Each part kind converts layers
through `approximate`'s `layer_map`, keyed by (part type, torch layer type).
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from axdnn.errors import AxError, ConfigError
from axdnn.formats import parse_format
from axdnn.kernels import list_backends
from axdnn.nn.gradients import DEFAULT_RANK, GRADIENTS
from axdnn.nn.quant import OBSERVERS

PLAN_VERSION = 1
Gradient = Literal[GRADIENTS]  # type: ignore[valid-type]
ObserverName = Literal[OBSERVERS]  # type: ignore[valid-type]


class SpecPart(BaseModel):
    """One typed part of a layer's spec. `slot` says which parts exclude each other; `trigger`
    names the keys whose (non-null) presence in a flat plan entry selects this part."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    slot: ClassVar[str]
    trigger: ClassVar[tuple[str, ...]]
    order: ClassVar[int] = 0  # weight transforms run in this order (pruning before sharing)

    def transform(self, module: Any, name: str) -> dict[str, Any]:
        """Change a layer's weights in place after its compute part converted it (pruning,
        sharing); returns what it did, for the report. Compute parts do nothing here."""
        return {}

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)


class MultiplierSpec(SpecPart):
    """The layer's products come from a multiplier's table (ApproxConv2d / ApproxLinear)."""

    slot: ClassVar[str] = "compute"
    trigger: ClassVar[tuple[str, ...]] = ("multiplier",)

    multiplier: str = Field(description="Multiplier spec, e.g. drum:4@u8")
    act_observer: ObserverName = "minmax"
    weight_observer: ObserverName = "minmax"
    per_channel: bool = True
    acc_bits: int | None = Field(None, ge=8, le=64)
    gradient: Gradient = "ste"
    gradient_rank: int = Field(DEFAULT_RANK, ge=1, description="Rank of the table gradient.")
    backend: str = "auto"

    @field_validator("backend")
    @classmethod
    def _check_backend(cls, value: str) -> str:
        choices = list_backends()
        if value not in choices:
            raise ConfigError(
                f"unknown kernel backend {value!r} in plan key 'backend'; "
                f"expected one of {', '.join(choices)}"
            )
        return value

    @field_validator("multiplier")
    @classmethod
    def _check_multiplier(cls, value: str) -> str:
        from axdnn.arith import get_multiplier

        get_multiplier(value)
        return value


class FormatSpec(SpecPart):
    """The layer's weights and/or inputs are held in number formats (FormatConv2d / ...)."""

    slot: ClassVar[str] = "compute"
    trigger: ClassVar[tuple[str, ...]] = ("weight_format", "act_format")

    weight_format: str | None = Field(None, description="Weight number format, e.g. fxp:s2.6")
    act_format: str | None = Field(None, description="Input number format, e.g. pact:4")

    @field_validator("weight_format", "act_format")
    @classmethod
    def _check_format(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        parse_format(value, source=f"plan key {info.field_name!r}")
        return value


SPEC_PARTS: list[type[SpecPart]] = [MultiplierSpec, FormatSpec]


def register_spec_part(cls: type[SpecPart]) -> type[SpecPart]:
    """Make a new kind of per-layer spec part loadable from plan files (a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, SpecPart)):
        raise ConfigError(f"register_spec_part needs a SpecPart subclass, got {cls!r}")
    taken = {k for part in SPEC_PARTS if part is not cls for k in part.keys()}
    clash = sorted(taken & set(cls.keys()))
    if clash:
        raise ConfigError(f"spec part {cls.__name__} reuses plan key(s) {clash}")
    if cls not in SPEC_PARTS:
        SPEC_PARTS.append(cls)
    return cls


EXTENSIONS = ("axdnn.compress.plan_parts",)
"""Modules of other rooms that register spec parts; imported when the first plan entry is read."""


def _load_extensions() -> None:
    import importlib

    for module in EXTENSIONS:
        importlib.import_module(module)


def _fold(raw: dict[str, Any]) -> list[SpecPart]:
    """The typed parts of one flat plan entry; unknown or orphaned keys are errors."""
    _load_extensions()
    known = {k for part in SPEC_PARTS for k in part.keys()}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"unknown plan key(s) {', '.join(map(repr, unknown))}; accepted keys: "
            f"{', '.join(sorted(known))}"
        )
    parts, used = [], set()
    for kind in SPEC_PARTS:
        if any(raw.get(k) is not None for k in kind.trigger):
            mine = {k: v for k, v in raw.items() if k in kind.keys()}
            parts.append(kind(**mine))
            used |= set(mine)
    _check_slots(parts, raw)
    orphans = sorted(k for k in set(raw) - used if raw[k] is not None and k != "multiplier")
    if orphans:
        owner = {k: part.__name__ for part in SPEC_PARTS for k in part.keys()}
        detail = ", ".join(f"{k} (a {owner[k]} key)" for k in orphans)
        raise ConfigError(f"plan entry gives {detail} but not the part it belongs to")
    return parts


def _check_slots(parts: list[SpecPart], raw: dict[str, Any]) -> None:
    slots = [p.slot for p in parts]
    for slot in set(slots):
        if slots.count(slot) < 2:
            continue
        given = ", ".join(
            f"{k}={raw[k]!r}"
            for p in parts[1:]
            if p.slot == slot
            for k in p.trigger
            if raw.get(k) is not None
        )
        first = next(p for p in parts if p.slot == slot)
        head = ", ".join(f"{k}={raw[k]!r}" for k in first.trigger if raw.get(k) is not None)
        raise ConfigError(
            f"layer spec gives {given} beside {head}; a multiplier fixes the integer operand "
            "domain (its widths and signedness), so give either a multiplier or "
            "weight_format/act_format, not both"
        )


class LayerSpec(BaseModel):
    """What the hardware does in one layer: its typed parts, at most one per slot. Built from
    flat keys, `LayerSpec(multiplier="drum:4", gradient="table")`, or from parts,
    `LayerSpec(parts=(MultiplierSpec(multiplier="drum:4"),))`; no part keeps the layer float."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parts: tuple[SerializeAsAny[SpecPart], ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "parts" not in data:
            return {"parts": tuple(_fold(data))}
        return data

    @model_validator(mode="after")
    def _one_per_slot(self) -> LayerSpec:
        slots = [p.slot for p in self.parts]
        if len(set(slots)) != len(slots):
            raise ConfigError(f"layer spec has two parts in one slot: {self.parts}")
        return self

    @model_serializer
    def _flat(self) -> dict[str, Any]:
        if not self.parts:
            return {"multiplier": None}
        flat: dict[str, Any] = {}
        for part in self.parts:
            flat.update(part.model_dump())
        return flat

    def part(self, slot: str) -> SpecPart | None:
        """The part in `slot` ('compute', or a slot another room registered), if any."""
        return next((p for p in self.parts if p.slot == slot), None)

    @property
    def transforms(self) -> list[SpecPart]:
        """The parts that change weights (every slot but 'compute'), in their order."""
        return sorted((p for p in self.parts if p.slot != "compute"), key=lambda p: p.order)

    @property
    def compute(self) -> SpecPart | None:
        """How the layer multiplies: a MultiplierSpec, a FormatSpec, or None (float)."""
        return self.part("compute")

    @property
    def multiplier(self) -> str | None:
        part = self.compute
        return part.multiplier if isinstance(part, MultiplierSpec) else None

    @property
    def weight_format(self) -> str | None:
        part = self.compute
        return part.weight_format if isinstance(part, FormatSpec) else None

    @property
    def act_format(self) -> str | None:
        part = self.compute
        return part.act_format if isinstance(part, FormatSpec) else None

    @property
    def has_formats(self) -> bool:
        """True when the spec names a weight or an activation format."""
        return isinstance(self.compute, FormatSpec)


class Plan(BaseModel):
    """An ordered map from layer-name glob patterns to LayerSpecs."""

    model_config = ConfigDict(extra="forbid")

    layers: dict[str, LayerSpec]
    description: str = ""
    version: int = Field(PLAN_VERSION, description="Plan file format version.")

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: int) -> int:
        if value != PLAN_VERSION:
            raise ConfigError(
                f"plan format version {value} is not one this axdnn reads (it reads version "
                f"{PLAN_VERSION}); upgrade axdnn or re-save the plan"
            )
        return value

    @classmethod
    def uniform(cls, multiplier: str, **spec) -> Plan:
        """The `--multiplier SPEC` shorthand: every conv/linear layer on one multiplier."""
        return cls(layers={"*": LayerSpec(multiplier=multiplier, **spec)})

    @classmethod
    def from_dict(cls, data: object, source: str = "plan") -> Plan:
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: expected a mapping with key 'layers', got {type(data).__name__}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise ConfigError(f"{source}: invalid plan: {_first_errors(err)}") from None
        except AxError as err:  # a bad key, multiplier, format or combination
            raise type(err)(f"{source}{_failing_pattern(data)}: {err}") from None

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan from YAML or JSON; errors name the file and the bad key."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"plan file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise ConfigError(f"plan file {str(path)!r} is not valid YAML/JSON: {err}") from None
        return cls.from_dict(data, source=f"plan file {str(path)!r}")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        data = self.model_dump(exclude_defaults=False)
        text = (
            json.dumps(data, indent=2)
            if path.suffix == ".json"
            else yaml.safe_dump(data, sort_keys=False)
        )
        path.write_text(text)
        return path

    def resolve(self, layer_names: list[str]) -> dict[str, tuple[str, LayerSpec]]:
        """Map each matched layer to (pattern, spec); a pattern matching nothing is an error."""
        chosen: dict[str, tuple[str, LayerSpec]] = {}
        for pattern, spec in self.layers.items():
            hits = [name for name in layer_names if fnmatch.fnmatchcase(name, pattern)]
            if not hits:
                raise ConfigError(
                    f"plan pattern {pattern!r} matches no layer; the model's layers are: "
                    f"{', '.join(layer_names) or '(none)'}"
                )
            for name in hits:
                chosen[name] = (pattern, spec)
        return chosen


def _failing_pattern(data: dict) -> str:
    """`, layer pattern 'P'` for the first layer entry that does not validate ('' if none)."""
    layers = data.get("layers")
    if not isinstance(layers, dict):
        return ""
    for pattern, raw in layers.items():
        try:
            LayerSpec.model_validate(raw)
        except (AxError, ValidationError):
            return f", layer pattern {pattern!r}"
    return ""


def _first_errors(err: ValidationError, limit: int = 3) -> str:
    parts = []
    for item in err.errors()[:limit]:
        where = ".".join(str(p) for p in item["loc"])
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
