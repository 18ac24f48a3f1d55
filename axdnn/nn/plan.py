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
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from axdnn.errors import AxError, ConfigError
from axdnn.formats import parse_format
from axdnn.kernels import list_backends


class LayerSpec(BaseModel):
    """What the hardware does in one layer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    multiplier: str | None = Field(
        None, description="Multiplier spec, e.g. drum:4@u8; null = float"
    )
    act_observer: Literal["minmax", "percentile", "mse"] = "minmax"
    weight_observer: Literal["minmax", "percentile", "mse"] = "minmax"
    per_channel: bool = True
    acc_bits: int | None = Field(None, ge=8, le=64)
    gradient: Literal["ste", "table"] = "ste"
    backend: str = "auto"
    weight_format: str | None = Field(None, description="Weight number format, e.g. fxp:s2.6")
    act_format: str | None = Field(None, description="Input number format, e.g. pact:4")

    @property
    def has_formats(self) -> bool:
        """True when the spec names a weight or an activation format."""
        return self.weight_format is not None or self.act_format is not None

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

    @field_validator("weight_format", "act_format")
    @classmethod
    def _check_format(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        parse_format(value, source=f"plan key {info.field_name!r}")
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> LayerSpec:
        if self.multiplier is not None and self.has_formats:
            given = ", ".join(
                f"{k}={getattr(self, k)!r}"
                for k in ("weight_format", "act_format")
                if getattr(self, k) is not None
            )
            raise ConfigError(
                f"layer spec gives {given} beside multiplier={self.multiplier!r}; a multiplier "
                "fixes the integer operand domain (its widths and signedness), so give either "
                "a multiplier or weight_format/act_format, not both"
            )
        return self

    @field_validator("multiplier")
    @classmethod
    def _check_multiplier(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from axdnn.arith import get_multiplier

        get_multiplier(value)
        return value


class Plan(BaseModel):
    """An ordered map from layer-name glob patterns to LayerSpecs."""

    model_config = ConfigDict(extra="forbid")

    layers: dict[str, LayerSpec]
    description: str = ""

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
        except AxError as err:  # a bad multiplier/format or combination, raised by a validator
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
