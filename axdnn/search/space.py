"""Design spaces: per-layer (or per tied group) choices of multiplier and number formats, and the
constraints a candidate must meet, loaded from YAML or built in Python and validated.

    groups:
      - layers: ["*"]                  # globs over the model's conv/linear layers
        multiplier: [exact@u8, exact@u6, {where: "mae_percent < 1", width: 8}]
        formats: [fxp:s2.4, {weight: fxp:s1.3, act: fxp:s3.4}]
      - name: head
        layers: [fc*]
        tied: true                     # one choice for all of them
        multiplier: [exact@u8]
    constraints: {max_drop: 0.01}

Choice kinds are a registry (`register_choice`): each kind turns its YAML value into options on
an *axis*; kinds on one axis are alternatives for one decision (a multiplier or number formats),
kinds on different axes are independent decisions. A later group takes layers from earlier ones.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from axdnn.errors import AxError, SearchError
from axdnn.nn import LayerSpec, Plan

FLOAT = "float"
"""The option that keeps a layer in fp32 (multiplier null, no formats)."""


@dataclass(frozen=True)
class Option:
    """One value of a decision: a label (the Optuna categorical value) and the LayerSpec fields
    it sets."""

    label: str
    fields: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class ChoiceKind:
    """A kind of per-layer choice: `expand(value, where)` turns its YAML value into options."""

    name: str
    axis: str
    expand: Callable[[Any, str], list[Option]]
    description: str = ""


CHOICES: dict[str, ChoiceKind] = {}
GROUP_KEYS = ("name", "layers", "tied", "choices")


def register_choice(kind: ChoiceKind) -> ChoiceKind:
    """Add a choice kind (e.g. pruning ratio) usable as a key of every space group."""
    if kind.name in CHOICES or kind.name in GROUP_KEYS:
        raise SearchError(f"choice kind {kind.name!r} is already registered or a group key")
    CHOICES[kind.name] = kind
    return kind


# --- catalogue filters -------------------------------------------------------------------------

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_OPS |= {"==": operator.eq, "!=": operator.ne}
_TERM = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|==|!=|<|>)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")


@lru_cache(maxsize=8)
def _catalogue(width: int, signed: bool) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    from axdnn.arith import catalogue

    return tuple((r["spec"], tuple(r["metrics"].items())) for r in catalogue(width, signed))


def metric_names() -> list[str]:
    """Error metrics a catalogue filter can name (those of `axdnn.arith.ErrorMetrics`)."""
    from axdnn.arith import ErrorMetrics

    return list(ErrorMetrics.__dataclass_fields__)


def parse_filter(text: str, where: str) -> list[tuple[str, Callable, float]]:
    """`"mae_percent < 1 and er_percent <= 90"` -> [(metric, op, bound), ...]."""
    terms = []
    for part in str(text).split(" and "):
        match = _TERM.match(part)
        if match is None:
            raise SearchError(
                f"{where}: bad catalogue filter term {part.strip()!r} in {text!r}; expected "
                "METRIC OP NUMBER joined by 'and', OP one of < <= > >= == !="
            )
        name, op, bound = match.groups()
        if name not in metric_names():
            raise SearchError(
                f"{where}: catalogue filter names unknown metric {name!r}; accepted: "
                f"{', '.join(metric_names())}"
            )
        terms.append((name, _OPS[op], float(bound)))
    return terms


def catalogue_specs(text: str, width: int = 8, signed: bool = False, where: str = "space") -> list:
    """Specs of the built-in catalogue at `width` bits whose metrics satisfy the filter."""
    terms = parse_filter(text, where)
    found = []
    for spec, metrics in _catalogue(width, signed):
        values = dict(metrics)
        if all(op(values[name], bound) for name, op, bound in terms):
            found.append(spec)
    if not found:
        raise SearchError(
            f"{where}: catalogue filter {text!r} at width {width} (signed={signed}) matches no "
            "multiplier; `axdnn multipliers list` shows the metrics"
        )
    return found


# --- built-in kinds ----------------------------------------------------------------------------


def _as_list(value: Any, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise SearchError(f"{where}: expected a non-empty list of choices, got {value!r}")
    return value


def _multiplier_options(value: Any, where: str) -> list[Option]:
    from axdnn.arith import get_multiplier

    specs: list[str | None] = []
    for item in _as_list(value, where):
        if isinstance(item, dict):
            extra = set(item) - {"where", "width", "signed"}
            if "where" not in item or extra:
                raise SearchError(
                    f"{where}: a catalogue filter is a mapping with key 'where' (and optional "
                    f"'width', 'signed'); got {item!r}"
                )
            found = catalogue_specs(
                item["where"], int(item.get("width", 8)), bool(item.get("signed", False)), where
            )
            specs.extend(found)
        elif item is None or item == FLOAT:
            specs.append(None)
        elif isinstance(item, str):
            try:
                get_multiplier(item)
            except AxError as err:
                raise SearchError(f"{where}: {err}") from None
            specs.append(item)
        else:
            raise SearchError(f"{where}: a multiplier choice is a spec string, 'float' or a "
                              f"catalogue filter mapping, got {item!r}")  # fmt: skip
    return [Option(FLOAT if s is None else s, (("multiplier", s),)) for s in dict.fromkeys(specs)]


def _format_options(value: Any, where: str) -> list[Option]:
    options = []
    for item in _as_list(value, where):
        if isinstance(item, str):
            weight, act = item, item
        elif isinstance(item, dict) and item and set(item) <= {"weight", "act"}:
            weight, act = item.get("weight"), item.get("act")
        else:
            raise SearchError(
                f"{where}: a formats choice is a format spec (weights and inputs) or a mapping "
                f"with keys 'weight' and/or 'act'; got {item!r}"
            )
        fields = (("weight_format", weight), ("act_format", act))
        try:
            LayerSpec(**dict(fields))
        except (AxError, ValidationError) as err:
            raise SearchError(f"{where}: bad formats choice {item!r}: {err}") from None
        options.append(Option(f"w={weight or FLOAT},a={act or FLOAT}", fields))
    return options


register_choice(ChoiceKind("multiplier", "arith", _multiplier_options, "multiplier specs"))
register_choice(ChoiceKind("formats", "arith", _format_options, "weight/input number formats"))


# --- the space ---------------------------------------------------------------------------------


class Group(BaseModel):
    """Layers that share a list of choices; `tied`: one decision for all of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    layers: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    tied: bool = False
    choices: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_choices(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        own = {k: v for k, v in data.items() if k in cls.model_fields}
        kinds = {k: v for k, v in data.items() if k not in cls.model_fields}
        unknown = [k for k in kinds if k not in CHOICES]
        if unknown:
            accepted = [k for k in cls.model_fields if k != "choices"] + list(CHOICES)
            raise SearchError(
                f"space group key {unknown[0]!r} is unknown; accepted keys: {', '.join(accepted)}"
            )
        return {**own, "choices": {**own.get("choices", {}), **kinds}}

    @model_validator(mode="after")
    def _check_choices(self) -> Group:
        if not self.choices:
            raise SearchError(
                f"space group {self.name or self.layers!r} gives no choices; give at least one "
                f"of {', '.join(CHOICES)}"
            )
        self.options()
        return self

    def options(self) -> dict[str, list[Option]]:
        """Options per axis (kinds on one axis concatenated, duplicates dropped)."""
        axes: dict[str, dict[str, Option]] = {}
        where = f"space group {self.name or self.layers!r}"
        for kind, value in self.choices.items():
            spec = CHOICES[kind]
            for option in spec.expand(value, f"{where}, key {kind!r}"):
                axes.setdefault(spec.axis, {}).setdefault(option.label, option)
        return {axis: list(opts.values()) for axis, opts in axes.items()}


class Constraints(BaseModel):
    """What a feasible candidate must meet (None: no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_drop: float | None = Field(
        0.01, ge=0, lt=1, description="Top-1 drop from float, as a fraction (0.01: 1 point)."
    )
    max_energy_ratio: float | None = Field(None, gt=0, description="Energy / reference energy.")
    max_energy_pj: float | None = Field(None, gt=0)
    max_macs: int | None = Field(None, ge=1, description="Effective MACs per sample.")


class Space(BaseModel):
    """A design space: groups of layers with their choices, constraints, and the reference
    (a multiplier on every layer) that energy savings are measured against."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: list[Group] = Field(min_length=1)
    constraints: Constraints = Constraints()
    reference: str = Field("exact@u8", description="Multiplier of the reference uniform plan.")
    description: str = ""

    @classmethod
    def from_dict(cls, data: Any, source: str = "space") -> Space:
        """Validate a mapping; errors name the source and the bad key."""
        if not isinstance(data, dict):
            raise SearchError(f"{source}: expected a mapping with key 'groups', got {data!r}")
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise SearchError(
                f"{source}: {loc}: {first['msg']} (got {first.get('input')!r})"
            ) from None
        except AxError as err:
            raise SearchError(f"{source}: {err}") from None

    @classmethod
    def load(cls, path: str | Path) -> Space:
        """Read a space from a YAML file (a top-level `space:` key is accepted too)."""
        path = Path(path)
        if not path.is_file():
            raise SearchError(f"space file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise SearchError(f"space file {str(path)!r} is not valid YAML: {err}") from None
        if isinstance(data, dict) and set(data) == {"space"}:
            data = data["space"]
        return cls.from_dict(data, source=f"space file {str(path)!r}")

    @classmethod
    def uniform(cls, multipliers: list, **kwargs: Any) -> Space:
        """Every layer chooses freely among `multipliers` (specs or catalogue filters)."""
        return cls(groups=[Group(layers=["*"], choices={"multiplier": multipliers})], **kwargs)

    def bind(self, layer_names: list[str]) -> BoundSpace:
        """The decisions of this space on a model with these multiplying layers."""
        return BoundSpace.build(self, layer_names)


@dataclass
class Unit:
    """One decision unit: a layer, or a tied group of layers, with options per axis."""

    name: str
    layers: list[str]
    axes: dict[str, list[Option]]


@dataclass
class BoundSpace:
    """A space applied to a model's layers: units, parameters and the candidate -> plan map."""

    space: Space
    units: list[Unit]
    layers: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, space: Space, layer_names: list[str]) -> BoundSpace:
        owner: dict[str, int] = {}
        for gi, group in enumerate(space.groups):
            for pattern in group.layers:
                hits = [n for n in layer_names if fnmatch.fnmatchcase(n, pattern)]
                if not hits:
                    raise SearchError(
                        f"space group {group.name or gi!r}: layer pattern {pattern!r} matches no "
                        f"layer; the model's layers are: {', '.join(layer_names) or '(none)'}"
                    )
                owner.update(dict.fromkeys(hits, gi))
        units = []
        for gi, group in enumerate(space.groups):
            mine = [n for n in layer_names if owner.get(n) == gi]
            axes = group.options()
            if group.tied and mine:
                units.append(Unit(group.name or "+".join(mine), mine, axes))
            else:
                units.extend(Unit(n, [n], axes) for n in mine)
        return cls(space, units, [n for n in layer_names if n in owner])

    def params(self) -> dict[str, list[str]]:
        """Optuna parameter name -> choice labels, in a fixed order."""
        return {
            f"{u.name}:{axis}": [o.label for o in opts]
            for u in self.units
            for axis, opts in u.axes.items()
        }

    def size(self) -> int:
        """Number of distinct candidates."""
        total = 1
        for labels in self.params().values():
            total *= len(labels)
        return total

    def to_plan(self, params: dict[str, str], description: str = "") -> Plan:
        """The plan of one candidate: every unit's layers get the fields of its chosen options."""
        layers = {}
        for unit in self.units:
            fields: dict[str, Any] = {}
            for axis, opts in unit.axes.items():
                key = f"{unit.name}:{axis}"
                label = params.get(key)
                chosen = next((o for o in opts if o.label == label), None)
                if chosen is None:
                    raise SearchError(
                        f"candidate gives {key}={label!r}; accepted: {[o.label for o in opts]}"
                    )
                fields.update(dict(chosen.fields))
            for layer in unit.layers:
                layers[_literal(layer)] = LayerSpec(**fields)
        return Plan(layers=layers, description=description)

    def uniform(self, label: str) -> dict[str, str]:
        """The candidate that gives every unit the option `label` (on the axis that has it)."""
        params = {}
        for key, labels in self.params().items():
            params[key] = label if label in labels else labels[0]
        return params

    def labels(self) -> list[str]:
        """Every option label of any unit, in first-seen order."""
        return list(dict.fromkeys(lbl for labels in self.params().values() for lbl in labels))


def _literal(name: str) -> str:
    """A glob pattern that matches exactly this layer name."""
    return re.sub(r"([*?\[])", r"[\1]", name)
