"""Cost records: `LayerCost` per layer and `CostReport` per model, plain data that round-trips
through JSON. Figures are per sample; see `axdnn.cost.counting` for how each op is counted."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from axdnn.errors import ConfigError

__all__ = ["CostReport", "LayerCost"]


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
