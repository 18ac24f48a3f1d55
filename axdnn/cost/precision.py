"""Per-layer precision of an approximated model, read from its layers' hardware profiles.

Approximate and format layers expose `hardware_profile() -> dict` (read here by duck typing; the
cost room does not import `axdnn.nn`). Keys: weight_bits, act_bits (computation bits), arith
('int', 'float' with exp_bits/man_bits, or 'fp32'), acc_bits, weight/act_extra_bits (stored FPEC
compensation bits per value), weight/act_comp_bits (width of an FPEC error estimate: direction
plus magnitude bits), weight/act_comp_fraction (share of values compensated), multiplier,
mul_energy_scale. Layers without a profile are fp32.

Pricing, on top of the energy model in `axdnn.cost.energy`:

- Integer operands: the quadratic multiplier model, ``E_int8_mul * a * w / 64``.
- Floats of any width: the mantissa multiplier dominates, so the multiply energy is fitted as
  ``E(m) = c0 + c1 (m + 1)^2`` through the table's fp16 (m = 10) and fp32 (m = 23) points
  (Horowitz 45 nm: bf16 0.77 pJ, fp8 e4m3 0.50 pJ); additions cost the fp16 adder for formats
  of at most 16 bits, else the fp32 adder (accumulation stays in fp16/fp32).
- FPEC compensation (Compensated-DNN, Jain et al., DAC 2018): memory carries the 2 + c stored
  compensation bits per value; every compensated value adds one sparse compensation product per
  MAC it takes part in, priced as a narrow multiply of the other operand (n bits) by the
  (1 + c)-bit error estimate plus an add at the product's width n + 1 + c: the products are
  summed in a narrow adder and merged into the accumulator once per output (amortised over the
  fan-in, not counted). Per MAC: ``f_w (E_mul(a, 1+c_w) + E_add(a+1+c_w)) + f_x (E_mul(w,
  1+c_x) + E_add(w+1+c_x))`` with f the compensated fractions (weights: counted on the weights;
  activations: counted during calibration, else 1 - 2t for the skip threshold t).
- `LayerPrecision` holds one multiply energy per MAC, so the compensation energy and a
  non-standard float width are folded into `mul_energy_scale` (relative to the multiplier the
  energy model would otherwise price); when weights and activations carry different numbers of
  compensation bits, their stored widths go into weight_bits/act_bits and the multiply energy is
  corrected through the same scale.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from axdnn.cost.energy import HOROWITZ_45NM, EnergyTable, LayerPrecision
from axdnn.errors import ConfigError

FP16_MAN_BITS = 10
FP32_MAN_BITS = 23
PROFILE_KEYS = ("weight_bits", "act_bits", "arith")


def float_mul_energy(man_bits: int, table: EnergyTable = HOROWITZ_45NM) -> float:
    """Multiply energy (pJ) of a float with `man_bits` stored mantissa bits: c0 + c1 (m+1)^2
    through the table's fp16 and fp32 multipliers; never below an integer (m+1)-bit multiply."""
    lo, hi = (FP16_MAN_BITS + 1) ** 2, (FP32_MAN_BITS + 1) ** 2
    slope = (table.fp32_mul - table.fp16_mul) / (hi - lo)
    energy = table.fp16_mul + slope * ((man_bits + 1) ** 2 - lo)
    return max(energy, table.int_mul(man_bits + 1, man_bits + 1))


def _get(profile: Mapping[str, Any], key: str, default: Any) -> Any:
    value = profile.get(key, default)
    return default if value is None else value


def _mul_energy(arith: str, profile: Mapping[str, Any], table: EnergyTable) -> float:
    if arith == "int":
        return table.int_mul(int(profile["act_bits"]), int(profile["weight_bits"]))
    if arith == "float":
        return float_mul_energy(int(profile["man_bits"]), table)
    return table.fp32_mul


def _compensation_energy(profile: Mapping[str, Any], table: EnergyTable) -> float:
    """Energy (pJ per MAC) of the sparse FPEC compensation products and their narrow adds."""
    total = 0.0
    for side, other in (("weight", "act"), ("act", "weight")):
        comp_bits = int(profile.get(f"{side}_comp_bits") or 0)
        fraction = float(profile.get(f"{side}_comp_fraction") or 0.0)
        if comp_bits and fraction:
            other_bits = int(profile[f"{other}_bits"])
            narrow = table.int_mul(other_bits, comp_bits) + table.int_add(other_bits + comp_bits)
            total += fraction * narrow
    return total


def precision_from_profile(
    profile: Mapping[str, Any], table: EnergyTable | None = None, where: str = "layer"
) -> LayerPrecision:
    """The LayerPrecision that prices one hardware profile (see the module docstring)."""
    table = HOROWITZ_45NM if table is None else table
    if not isinstance(profile, Mapping):
        raise ConfigError(f"{where}: hardware_profile() returned {profile!r}; expected a dict")
    missing = [k for k in PROFILE_KEYS if k not in profile]
    if missing:
        raise ConfigError(f"{where}: hardware profile lacks key(s) {missing}; needs {PROFILE_KEYS}")
    arith = profile["arith"]
    if arith not in ("int", "float", "fp32"):
        raise ConfigError(f"{where}: hardware profile arith={arith!r}; expected int, float, fp32")
    if arith == "float" and profile.get("man_bits") is None:
        raise ConfigError(f"{where}: a 'float' hardware profile needs man_bits")
    w_bits, a_bits = int(profile["weight_bits"]), int(profile["act_bits"])
    w_extra = int(_get(profile, "weight_extra_bits", 0))
    a_extra = int(_get(profile, "act_extra_bits", 0))
    acc_bits = int(_get(profile, "acc_bits", 32))
    if w_extra == a_extra:
        stored_w, stored_a, extra = w_bits, a_bits, w_extra
    else:
        stored_w, stored_a, extra = w_bits + w_extra, a_bits + a_extra, 0
    if arith == "int":
        kind = "int"
        base = table.int_mul(stored_a, stored_w)
    elif arith == "float":
        width = 1 + int(_get(profile, "exp_bits", 8)) + int(profile["man_bits"])
        kind = "fp16" if width <= 16 else "fp32"
        base = table.fp16_mul if kind == "fp16" else table.fp32_mul
    else:
        kind, base = "fp32", table.fp32_mul
    scale = float(_get(profile, "mul_energy_scale", 1.0))
    energy = scale * _mul_energy(arith, profile, table) + _compensation_energy(profile, table)
    return LayerPrecision(
        weight_bits=stored_w,
        act_bits=stored_a,
        acc_bits=acc_bits,
        arith=kind,
        mul_energy_scale=energy / base,
        extra_bits_per_value=extra,
    )


def layer_profiles(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Hardware profiles of every module that has one, by qualified name."""
    found = {}
    for name, module in model.named_modules():
        describe = getattr(module, "hardware_profile", None)
        if name and callable(describe):
            found[name] = dict(describe())
    return found


def precision_from_model(
    model: nn.Module, table: EnergyTable | None = None
) -> Callable[[str], LayerPrecision]:
    """A function layer name -> LayerPrecision for `estimate_energy`, from the model's layers'
    hardware profiles; layers without one (plain float layers, functional ops) are fp32."""
    chosen = {
        name: precision_from_profile(profile, table, where=f"layer {name!r}")
        for name, profile in layer_profiles(model).items()
    }
    fp32 = LayerPrecision.fp32()
    return lambda name: chosen.get(name, fp32)
