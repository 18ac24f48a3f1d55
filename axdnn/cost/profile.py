"""`HardwareProfile`: what the cost model needs to price one layer, as a typed contract.

Every approximate layer (any room's, and a user's) describes its hardware with `hardware_profile()
-> HardwareProfile`; `axdnn.cost.precision` prices it. The profile validates itself on
construction, so a layer with an impossible description fails where it is built, not later in a
report. Field meanings:

- weight_bits / act_bits: bits each operand is computed with; arith: 'int', 'float' (exp_bits and
  man_bits then say which float) or 'fp32'; acc_bits: accumulator width (None: 32).
- weight/act_extra_bits: stored FPEC compensation bits per value (memory only).
- weight/act_comp_bits: width of an FPEC error estimate (direction plus magnitude bits);
  weight/act_comp_fraction: share of values that are compensated.
- multiplier: the multiplier spec, if a product table computes the layer; mul_energy_scale: its
  energy relative to the exact multiplier the energy model would otherwise price.
- weight_format / act_format: the format specs, for reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Protocol, runtime_checkable

from axdnn.errors import ConfigError

Arith = Literal["int", "float", "fp32"]
ARITHS = ("int", "float", "fp32")


@dataclass(frozen=True)
class HardwareProfile:
    """How one layer's multiplies are done in hardware (see the module docstring)."""

    kind: str
    weight_bits: int
    act_bits: int
    arith: Arith = "int"
    exp_bits: int | None = None
    man_bits: int | None = None
    acc_bits: int | None = None
    weight_extra_bits: int = 0
    act_extra_bits: int = 0
    weight_comp_bits: int = 0
    act_comp_bits: int = 0
    weight_comp_fraction: float = 0.0
    act_comp_fraction: float = 0.0
    multiplier: str | None = None
    mul_energy_scale: float = 1.0
    weight_format: str | None = None
    act_format: str | None = None

    def __post_init__(self) -> None:
        if self.arith not in ARITHS:
            raise ConfigError(
                f"hardware profile arith={self.arith!r}; expected one of {', '.join(ARITHS)}"
            )
        if self.arith == "float" and self.man_bits is None:
            raise ConfigError("a 'float' hardware profile needs man_bits")
        for name in ("weight_bits", "act_bits"):
            if getattr(self, name) < 1:
                raise ConfigError(f"hardware profile {name}={getattr(self, name)}; needs >= 1")
        for name in ("weight_comp_fraction", "act_comp_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"hardware profile {name}={getattr(self, name)}; needs 0..1")
        if self.mul_energy_scale < 0:
            raise ConfigError(f"hardware profile mul_energy_scale={self.mul_energy_scale} < 0")

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class ProfiledLayer(Protocol):
    """A module the cost model prices by its own description instead of as fp32."""

    def hardware_profile(self) -> HardwareProfile: ...


@runtime_checkable
class ProfiledSites(Protocol):
    """A module that prices functional-op sites (by site name) that it computes."""

    def site_profiles(self) -> dict[str, HardwareProfile]: ...


@runtime_checkable
class WeightStorage(Protocol):
    """How a layer stores its weights when not one value per weight (a shared-weight codebook);
    set as the layer's `weight_storage` attribute."""

    def bits_per_weight(self, value_bits: int, weights: int) -> float: ...


__all__ = [
    "ARITHS",
    "Arith",
    "HardwareProfile",
    "ProfiledLayer",
    "ProfiledSites",
    "WeightStorage",
]
