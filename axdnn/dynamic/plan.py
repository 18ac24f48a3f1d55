"""Dynamic-effort settings as plain data: per layer a mechanism and its knobs, per exit a
confidence threshold. Saved to and loaded from JSON-ready dicts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from axdnn.errors import DynamicError

MECHANISMS = ("dense", "spet", "sdss", "sfma")


@dataclass(frozen=True)
class LayerSetting:
    """What one conv/linear layer runs: `mechanism` and its knobs.

    spet: `fraction` (stage-1 share of terms), `alpha` (bound scale, 1 = exact), `block`
    (output channels per stage-2 product); sdss and sfma: `delta` (similarity tolerance,
    relative to the map's mean magnitude).
    """

    mechanism: str = "dense"
    fraction: float = 0.25
    alpha: float = 1.0
    block: int = 4
    delta: float = 0.0

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise DynamicError(
                f"unknown dynamic mechanism {self.mechanism!r}; expected one of {MECHANISMS}"
            )
        if self.delta < 0:
            raise DynamicError(f"delta {self.delta!r} must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerSetting:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise DynamicError(
                f"unknown layer setting key(s) {sorted(unknown)}; accepted: {sorted(known)}"
            )
        return cls(**d)


@dataclass
class DynamicPlan:
    """Per-layer settings (layers not named run dense) and per-exit thresholds (None = off)."""

    layers: dict[str, LayerSetting] = field(default_factory=dict)
    exits: dict[str, float | None] = field(default_factory=dict)

    def setting(self, name: str) -> LayerSetting:
        return self.layers.get(name, LayerSetting())

    def with_layer(self, name: str, setting: LayerSetting) -> DynamicPlan:
        return DynamicPlan({**self.layers, name: setting}, dict(self.exits))

    def with_exit(self, name: str, threshold: float | None) -> DynamicPlan:
        return DynamicPlan(dict(self.layers), {**self.exits, name: threshold})

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": {k: v.to_dict() for k, v in self.layers.items()},
            "exits": dict(self.exits),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DynamicPlan:
        layers = {k: LayerSetting.from_dict(v) for k, v in (d.get("layers") or {}).items()}
        return cls(layers, dict(d.get("exits") or {}))
