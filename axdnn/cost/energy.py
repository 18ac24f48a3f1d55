"""Energy model: per-layer compute and memory energy from a `CostReport` and per-layer precision.

Default figures are the 45 nm, 0.9 V numbers of M. Horowitz, "Computing's energy problem (and
what we can do about it)", ISSCC 2014, pp. 10-14 (Fig. 1.1.9): int8 add 0.03 pJ, int8 mult 0.2 pJ,
int32 add 0.1 pJ, int32 mult 3.1 pJ, fp16 add 0.4 pJ, fp16 mult 1.1 pJ, fp32 add 0.9 pJ, fp32
mult 3.7 pJ, 64-bit read from an 8 KB SRAM 10 pJ, 64-bit DRAM access 1.3-2.6 nJ (2.0 nJ here).

Model, stated once:

- Integer multiplier energy grows with the product of the operand widths (array multiplier area):
  ``E_mul(a, b) = E_int8_mul * a * b / 64``; adder energy is linear in the accumulator width
  through the int8 and int32 points. Float arithmetic uses the fp16/fp32 figures as they are.
  ``mul_energy_scale`` multiplies the multiplier energy (an approximate multiplier's published
  power relative to the exact one).
- Compute energy = effective MACs x (E_mul + E_add); skipped MACs cost nothing.
- Memory traffic per sample, an ideal-reuse dataflow (a lower bound): every weight read once,
  every input activation read once, every output activation written once, each value at its
  stored width (weight_bits or act_bits) plus ``extra_bits_per_value``; writes cost the same as
  reads; biases are ignored. Shared weights (a codebook of k values) are stored as
  ``weight_storage_bits`` per weight (index bits plus the codebook amortised over the layer's
  weights); the codebook reads themselves are not priced. Memory energy = bits / 64 x the
  64-bit access energy of the chosen level ('sram', 'dram', or 'none' for compute only).
  Skipping MACs does not reduce traffic.
- An op whose operands are both activations (e.g. attention matmuls) multiplies act_bits x
  act_bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from axdnn.cost.records import CostReport, LayerCost
from axdnn.errors import ConfigError

__all__ = [
    "HOROWITZ_45NM",
    "HOROWITZ_45NM_YAML",
    "EnergyReport",
    "EnergyTable",
    "LayerEnergy",
    "LayerPrecision",
    "estimate_energy",
    "layer_energy",
]

_ARITH = ("int", "fp32", "fp16")
_MEMORY = ("sram", "dram", "none")


class EnergyTable(BaseModel):
    """Energies in pJ of arithmetic operations and 64-bit memory accesses at one technology node.

    Defaults: Horowitz, ISSCC 2014, 45 nm (see module docstring). Load other nodes with
    `from_yaml`; a YAML table must give every energy key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "horowitz-45nm"
    node_nm: float | None = Field(default=45.0, gt=0)
    source: str = "M. Horowitz, Computing's energy problem, ISSCC 2014"
    int8_add: float = Field(default=0.03, gt=0, allow_inf_nan=False)
    int8_mul: float = Field(default=0.2, gt=0, allow_inf_nan=False)
    int32_add: float = Field(default=0.1, gt=0, allow_inf_nan=False)
    int32_mul: float = Field(default=3.1, gt=0, allow_inf_nan=False)
    fp16_add: float = Field(default=0.4, gt=0, allow_inf_nan=False)
    fp16_mul: float = Field(default=1.1, gt=0, allow_inf_nan=False)
    fp32_add: float = Field(default=0.9, gt=0, allow_inf_nan=False)
    fp32_mul: float = Field(default=3.7, gt=0, allow_inf_nan=False)
    sram_64b: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    dram_64b: float = Field(default=2000.0, gt=0, allow_inf_nan=False)

    @classmethod
    def energy_keys(cls) -> list[str]:
        """Keys holding energies (pJ); a YAML table must give all of them."""
        return [k for k in cls.model_fields if k not in ("name", "node_nm", "source")]

    @classmethod
    def from_yaml(cls, path: str | Path) -> EnergyTable:
        """Load a table from a YAML mapping; ConfigError names the file and the bad key."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as err:
            raise ConfigError(f"energy table {path}: cannot read file ({err})") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"energy table {path}: not valid YAML ({err})") from err
        return cls.from_mapping(data, source=str(path))

    @classmethod
    def from_mapping(cls, data: Any, source: str = "<mapping>") -> EnergyTable:
        """Validate a plain mapping (as read from YAML/JSON) into a table."""
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"energy table {source}: top level must be a mapping of keys to pJ values, "
                f"got {type(data).__name__}"
            )
        missing = [k for k in cls.energy_keys() if k not in data]
        if missing:
            raise ConfigError(
                f"energy table {source}: missing key(s) {missing}; every one of "
                f"{cls.energy_keys()} must be given (pJ)"
            )
        try:
            return cls(**data)
        except ValidationError as err:
            problems = "; ".join(
                f"key {'.'.join(str(p) for p in e['loc'])!r} = {e.get('input')!r}: {e['msg']}"
                for e in err.errors()
            )
            raise ConfigError(
                f"energy table {source}: {problems}; energies must be finite numbers > 0 (pJ), "
                f"allowed keys: {list(cls.model_fields)}"
            ) from err

    def to_yaml(self, path: str | Path) -> None:
        """Write the table as YAML (round-trips through `from_yaml`)."""
        Path(path).write_text(yaml.safe_dump(self.model_dump(), sort_keys=False))

    def int_mul(self, a_bits: int, b_bits: int) -> float:
        """Integer multiplier energy, quadratic in width: ``int8_mul * a_bits * b_bits / 64``."""
        return self.int8_mul * a_bits * b_bits / 64.0

    def int_add(self, bits: int) -> float:
        """Integer adder energy, linear in width through the int8 and int32 points."""
        slope = (self.int32_add - self.int8_add) / 24.0
        return max(self.int8_add + (bits - 8) * slope, 0.0)

    def access_64b(self, memory: str) -> float:
        """Energy of one 64-bit access at memory level 'sram', 'dram' or 'none'."""
        if memory == "sram":
            return self.sram_64b
        if memory == "dram":
            return self.dram_64b
        if memory == "none":
            return 0.0
        raise ConfigError(f"memory level {memory!r} unknown; choose one of {list(_MEMORY)}")


HOROWITZ_45NM = EnergyTable()
HOROWITZ_45NM_YAML = Path(__file__).with_name("horowitz45nm.yaml")  # same figures, as a template


@dataclass(frozen=True)
class LayerPrecision:
    """Arithmetic and storage precision of one layer, as the energy model sees it."""

    weight_bits: int = 32
    act_bits: int = 32
    acc_bits: int = 32
    arith: Literal["int", "fp32", "fp16"] = "fp32"
    mul_energy_scale: float = 1.0
    extra_bits_per_value: int = 0
    weight_storage_bits: float | None = None  # bits per stored weight when not weight_bits

    def __post_init__(self) -> None:
        for key in ("weight_bits", "act_bits", "acc_bits"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64:
                raise ConfigError(f"LayerPrecision.{key}={value!r}: must be an int in [1, 64]")
        if self.arith not in _ARITH:
            raise ConfigError(f"LayerPrecision.arith={self.arith!r}: choose one of {_ARITH}")
        scale = self.mul_energy_scale
        if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
            raise ConfigError(
                f"LayerPrecision.mul_energy_scale={scale!r}: must be a finite number >= 0"
            )
        extra = self.extra_bits_per_value
        if not isinstance(extra, int) or isinstance(extra, bool) or extra < 0:
            raise ConfigError(f"LayerPrecision.extra_bits_per_value={extra!r}: must be an int >= 0")
        stored = self.weight_storage_bits
        if stored is not None and not (isinstance(stored, (int, float)) and stored > 0):
            raise ConfigError(f"LayerPrecision.weight_storage_bits={stored!r}: must be > 0")

    @classmethod
    def fp32(cls) -> LayerPrecision:
        """Plain float32 inference (the default for an unmodified model)."""
        return cls()

    @classmethod
    def fp16(cls) -> LayerPrecision:
        """Half precision storage and arithmetic."""
        return cls(16, 16, 16, "fp16")

    @classmethod
    def integer(cls, weight_bits: int = 8, act_bits: int = 8, acc_bits: int = 32) -> LayerPrecision:
        """Integer MACs with the given operand and accumulator widths."""
        return cls(weight_bits, act_bits, acc_bits, "int")


@dataclass
class LayerEnergy:
    """Energy of one layer per sample, in pJ, with the figures it came from."""

    name: str
    kind: str
    macs: int
    effective_macs: int
    precision: dict[str, Any]
    mul_pj: float
    add_pj: float
    compute_pj: float
    weight_bits_moved: int
    act_bits_moved: int
    memory_pj: float

    @property
    def memory_bits(self) -> int:
        """All bits moved to and from memory by this layer."""
        return self.weight_bits_moved + self.act_bits_moved

    @property
    def total_pj(self) -> float:
        """Compute plus memory energy."""
        return self.compute_pj + self.memory_pj

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, derived figures included."""
        return {**asdict(self), "memory_bits": self.memory_bits, "total_pj": self.total_pj}


@dataclass
class EnergyReport:
    """Per-layer energies per sample (pJ) at one memory level under one energy table."""

    layers: list[LayerEnergy]
    memory: str
    table: dict[str, Any] = field(default_factory=dict)

    @property
    def total_compute_pj(self) -> float:
        """Arithmetic energy summed over layers."""
        return sum(x.compute_pj for x in self.layers)

    @property
    def total_memory_pj(self) -> float:
        """Memory energy summed over layers."""
        return sum(x.memory_pj for x in self.layers)

    @property
    def total_pj(self) -> float:
        """Compute plus memory energy, summed over layers."""
        return self.total_compute_pj + self.total_memory_pj

    def layer(self, name: str) -> LayerEnergy:
        """The record named `name`."""
        for x in self.layers:
            if x.name == name:
                return x
        raise ConfigError(
            f"no layer named {name!r} in energy report; known: {[x.name for x in self.layers]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict with layers and totals."""
        return {
            "memory": self.memory,
            "table": dict(self.table),
            "total_compute_pj": self.total_compute_pj,
            "total_memory_pj": self.total_memory_pj,
            "total_pj": self.total_pj,
            "layers": [x.to_dict() for x in self.layers],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnergyReport:
        """Inverse of `to_dict`; derived totals are recomputed, not read."""
        try:
            keys = {f for f in LayerEnergy.__dataclass_fields__}
            layers = [LayerEnergy(**{k: v for k, v in x.items() if k in keys}) for x in d["layers"]]
            return cls(layers=layers, memory=str(d["memory"]), table=dict(d.get("table", {})))
        except (KeyError, TypeError) as err:
            raise ConfigError(f"energy report dict is malformed: {err}") from err


PrecisionSpec = Callable[[str], LayerPrecision] | LayerPrecision | None


def _resolve(precision: PrecisionSpec) -> Callable[[str], LayerPrecision]:
    if precision is None:
        default = LayerPrecision.fp32()
        return lambda name: default
    if isinstance(precision, LayerPrecision):
        return lambda name: precision
    if callable(precision):
        return precision
    raise ConfigError(
        f"precision {precision!r}: give a LayerPrecision, a function name -> LayerPrecision, "
        f"or None for fp32"
    )


def _op_energy(layer: LayerCost, p: LayerPrecision, table: EnergyTable) -> tuple[float, float]:
    """(multiply pJ, add pJ) of one MAC of `layer` at precision `p`."""
    if p.arith == "int":
        b_bits = p.weight_bits if layer.weight_elems else p.act_bits
        mul = table.int_mul(p.act_bits, b_bits)
        add = table.int_add(p.acc_bits)
    elif p.arith == "fp16":
        mul, add = table.fp16_mul, table.fp16_add
    else:
        mul, add = table.fp32_mul, table.fp32_add
    return mul * p.mul_energy_scale, add


def layer_energy(
    layer: LayerCost, p: LayerPrecision, table: EnergyTable, memory: str
) -> LayerEnergy:
    """Energy of one layer per sample (see module docstring for the model)."""
    mul, add = _op_energy(layer, p, table)
    per_weight = p.weight_bits + p.extra_bits_per_value
    if p.weight_storage_bits is not None:
        per_weight = p.weight_storage_bits
    weight_bits = round(layer.weight_elems * per_weight)
    act_bits = (layer.input_elems + layer.output_elems) * (p.act_bits + p.extra_bits_per_value)
    memory_pj = (weight_bits + act_bits) / 64.0 * table.access_64b(memory)
    return LayerEnergy(
        name=layer.name,
        kind=layer.kind,
        macs=layer.macs,
        effective_macs=layer.effective_macs,
        precision=asdict(p),
        mul_pj=mul,
        add_pj=add,
        compute_pj=layer.effective_macs * (mul + add),
        weight_bits_moved=weight_bits,
        act_bits_moved=act_bits,
        memory_pj=memory_pj,
    )


def estimate_energy(
    report: CostReport,
    precision: PrecisionSpec = None,
    table: EnergyTable | None = None,
    memory: str = "sram",
) -> EnergyReport:
    """Per-layer energy (pJ per sample) of a counted model under per-layer precisions.

    `precision` is one LayerPrecision for all layers, a function of the layer name, or None
    (fp32 everywhere); `memory` is 'sram', 'dram' or 'none'; `table` defaults to Horowitz 45 nm.
    """
    table = HOROWITZ_45NM if table is None else table
    if memory not in _MEMORY:
        raise ConfigError(f"memory level {memory!r} unknown; choose one of {list(_MEMORY)}")
    get = _resolve(precision)
    layers = []
    for layer in report.layers:
        p = get(layer.name)
        if not isinstance(p, LayerPrecision):
            raise ConfigError(
                f"precision for layer {layer.name!r} is {p!r}; the precision function must "
                f"return a LayerPrecision"
            )
        layers.append(layer_energy(layer, p, table, memory))
    return EnergyReport(layers=layers, memory=memory, table=table.model_dump())
