"""Per-layer precision of an approximated model, read from its layers' hardware profiles.

Approximate and format layers (any room's, or a user's) expose `hardware_profile() ->
HardwareProfile` (axdnn/cost/profile.py: the typed contract and its field meanings; the cost room
does not import `axdnn.nn`). Layers without a profile are fp32.

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

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from axdnn.cost.energy import HOROWITZ_45NM, EnergyTable, LayerPrecision
from axdnn.cost.profile import HardwareProfile, ProfiledLayer, ProfiledSites, WeightStorage
from axdnn.errors import ConfigError

FP16_MAN_BITS = 10
FP32_MAN_BITS = 23


def float_mul_energy(man_bits: int, table: EnergyTable = HOROWITZ_45NM) -> float:
    """Multiply energy (pJ) of a float with `man_bits` stored mantissa bits: c0 + c1 (m+1)^2
    through the table's fp16 and fp32 multipliers; never below an integer (m+1)-bit multiply."""
    lo, hi = (FP16_MAN_BITS + 1) ** 2, (FP32_MAN_BITS + 1) ** 2
    slope = (table.fp32_mul - table.fp16_mul) / (hi - lo)
    energy = table.fp16_mul + slope * ((man_bits + 1) ** 2 - lo)
    return max(energy, table.int_mul(man_bits + 1, man_bits + 1))


def _mul_energy(profile: HardwareProfile, table: EnergyTable) -> float:
    if profile.arith == "int":
        return table.int_mul(profile.act_bits, profile.weight_bits)
    if profile.arith == "float":
        return float_mul_energy(profile.man_bits, table)
    return table.fp32_mul


def _compensation_energy(profile: HardwareProfile, table: EnergyTable) -> float:
    """Energy (pJ per MAC) of the sparse FPEC compensation products and their narrow adds."""
    sides = (
        (profile.weight_comp_bits, profile.weight_comp_fraction, profile.act_bits),
        (profile.act_comp_bits, profile.act_comp_fraction, profile.weight_bits),
    )
    total = 0.0
    for comp_bits, fraction, other_bits in sides:
        if comp_bits and fraction:
            narrow = table.int_mul(other_bits, comp_bits) + table.int_add(other_bits + comp_bits)
            total += fraction * narrow
    return total


def _base_multiplier(profile: HardwareProfile, stored_a: int, stored_w: int, table: EnergyTable):
    """(energy-model arithmetic kind, the multiply energy it would price) for the profile."""
    if profile.arith == "int":
        return "int", table.int_mul(stored_a, stored_w)
    if profile.arith == "float":
        exp_bits = 8 if profile.exp_bits is None else profile.exp_bits
        if 1 + exp_bits + profile.man_bits <= 16:
            return "fp16", table.fp16_mul
    return "fp32", table.fp32_mul


def precision_from_profile(
    profile: HardwareProfile, table: EnergyTable | None = None, where: str = "layer"
) -> LayerPrecision:
    """The LayerPrecision that prices one hardware profile (see the module docstring)."""
    table = HOROWITZ_45NM if table is None else table
    if not isinstance(profile, HardwareProfile):
        raise ConfigError(
            f"{where}: hardware_profile() returned {type(profile).__name__}; expected an "
            "axdnn.cost.HardwareProfile"
        )
    w_bits, a_bits = profile.weight_bits, profile.act_bits
    w_extra, a_extra = profile.weight_extra_bits, profile.act_extra_bits
    if w_extra == a_extra:
        stored_w, stored_a, extra = w_bits, a_bits, w_extra
    else:
        stored_w, stored_a, extra = w_bits + w_extra, a_bits + a_extra, 0
    kind, base = _base_multiplier(profile, stored_a, stored_w, table)
    energy = profile.mul_energy_scale * _mul_energy(profile, table)
    energy += _compensation_energy(profile, table)
    return LayerPrecision(
        weight_bits=stored_w,
        act_bits=stored_a,
        acc_bits=32 if profile.acc_bits is None else profile.acc_bits,
        arith=kind,
        mul_energy_scale=energy / base,
        extra_bits_per_value=extra,
    )


def layer_profiles(model: nn.Module) -> dict[str, HardwareProfile]:
    """Hardware profiles of every module that describes itself, by qualified name."""
    profiles = {
        name: module.hardware_profile()
        for name, module in model.named_modules()
        if name and isinstance(module, ProfiledLayer)
    }
    for module in model.modules():  # functional ops a plan put on a multiplier
        if isinstance(module, ProfiledSites):
            profiles.update(module.site_profiles())
    return profiles


def precision_from_model(
    model: nn.Module, table: EnergyTable | None = None
) -> Callable[[str], LayerPrecision]:
    """A function layer name -> LayerPrecision for `estimate_energy`, from the model's layers'
    hardware profiles; layers without one (plain float layers, functional ops) are fp32."""
    chosen = {
        name: precision_from_profile(profile, table, where=f"layer {name!r}")
        for name, profile in layer_profiles(model).items()
    }
    for name, module in model.named_modules():  # shared weights: a codebook plus indices
        storage = getattr(module, "weight_storage", None)
        weight = getattr(module, "weight", None)
        if isinstance(storage, WeightStorage) and isinstance(weight, torch.Tensor):
            p = chosen.get(name, LayerPrecision.fp32())
            bits = storage.bits_per_weight(p.weight_bits, weight.numel())
            chosen[name] = dataclasses.replace(p, weight_storage_bits=bits)
    fp32 = LayerPrecision.fp32()
    return lambda name: chosen.get(name, fp32)
