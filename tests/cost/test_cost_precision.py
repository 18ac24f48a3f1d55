"""Pricing layers by their hardware profiles: integer widths, floats of any width, FPEC
compensation overhead, published multiplier power; models and the `cost` command."""

from collections import OrderedDict
from dataclasses import replace

import pytest
import torch
from torch import nn

from axdnn.cost import (
    HOROWITZ_45NM,
    HardwareProfile,
    LayerPrecision,
    count_ops,
    estimate_energy,
    float_mul_energy,
    precision_from_model,
    precision_from_profile,
)
from axdnn.errors import ConfigError

T = HOROWITZ_45NM


def profile(**kw):
    return HardwareProfile(**{"kind": "test", "weight_bits": 8, "act_bits": 8, **kw})


class Described(nn.Linear):
    """A layer with a hand-written profile, as any room's layer may expose one."""

    def __init__(self, prof):
        super().__init__(4, 3)
        self.prof = prof

    def hardware_profile(self):
        return self.prof


def test_integer_profile_prices_the_quadratic_multiplier():
    p = precision_from_profile(profile(weight_bits=4, act_bits=6, acc_bits=24))
    assert (p.weight_bits, p.act_bits, p.acc_bits, p.arith) == (4, 6, 24, "int")
    assert p.mul_energy_scale == pytest.approx(1.0)
    assert p.extra_bits_per_value == 0


def test_float_widths_interpolate_between_fp16_and_fp32():
    assert float_mul_energy(10) == pytest.approx(T.fp16_mul)
    assert float_mul_energy(23) == pytest.approx(T.fp32_mul)
    energies = [float_mul_energy(m) for m in range(0, 24)]
    assert all(a < b for a, b in zip(energies, energies[1:], strict=False))
    bf16 = precision_from_profile(
        profile(weight_bits=16, act_bits=16, arith="float", exp_bits=8, man_bits=7)
    )
    assert bf16.arith == "fp16"
    assert bf16.mul_energy_scale * T.fp16_mul == pytest.approx(float_mul_energy(7))
    wide = precision_from_profile(
        profile(weight_bits=20, act_bits=20, arith="float", exp_bits=8, man_bits=11)
    )
    assert wide.arith == "fp32"
    assert wide.mul_energy_scale * T.fp32_mul == pytest.approx(float_mul_energy(11))


def test_fpec_compensation_adds_memory_bits_and_sparse_products():
    plain = precision_from_profile(profile(weight_bits=4, act_bits=4))
    fpec = profile(
        weight_bits=4,
        act_bits=4,
        weight_extra_bits=3,
        act_extra_bits=3,
        weight_comp_bits=2,
        act_comp_bits=2,
        weight_comp_fraction=0.5,
        act_comp_fraction=0.25,
    )
    p = precision_from_profile(fpec)
    assert (p.weight_bits, p.act_bits, p.extra_bits_per_value) == (4, 4, 3)
    comp = 0.75 * (T.int_mul(4, 2) + T.int_add(6))
    assert p.mul_energy_scale * T.int_mul(4, 4) == pytest.approx(T.int_mul(4, 4) + comp)
    assert p.mul_energy_scale > plain.mul_energy_scale
    none_compensated = precision_from_profile(
        replace(fpec, weight_comp_fraction=0.0, act_comp_fraction=0.0)
    )
    assert none_compensated.mul_energy_scale == pytest.approx(1.0)


def test_unequal_compensation_bits_go_into_stored_widths():
    p = precision_from_profile(profile(weight_bits=4, act_bits=6, weight_extra_bits=2))
    assert (p.weight_bits, p.act_bits, p.extra_bits_per_value) == (6, 6, 0)
    assert p.mul_energy_scale * T.int_mul(6, 6) == pytest.approx(T.int_mul(6, 4))


def test_published_multiplier_power_scales_only_the_multiplier():
    p = precision_from_profile(profile(mul_energy_scale=0.5))
    assert p.mul_energy_scale == pytest.approx(0.5)


def test_bad_profiles_are_config_errors_naming_the_layer():
    untyped = {"weight_bits": 8, "act_bits": 8, "arith": "int"}
    with pytest.raises(ConfigError, match="'fc'.*returned dict.*HardwareProfile"):
        precision_from_model(nn.Sequential(OrderedDict(fc=Described(untyped))))
    with pytest.raises(ConfigError, match="arith"):
        profile(arith="posit")
    with pytest.raises(ConfigError, match="man_bits"):
        profile(arith="float")
    with pytest.raises(ConfigError, match="act_comp_fraction"):
        profile(act_comp_fraction=1.5)


def test_model_precision_reads_profiles_and_defaults_to_fp32():
    model = nn.Sequential(Described(profile(weight_bits=2, act_bits=4)), nn.ReLU(), nn.Linear(3, 2))
    get = precision_from_model(model)
    assert get("0") == LayerPrecision(2, 4, 32, "int")
    assert get("2") == LayerPrecision.fp32()
    report = count_ops(model, (4,))
    energy = estimate_energy(report, get)
    assert energy.layer("0").mul_pj == pytest.approx(T.int_mul(4, 2))
    assert energy.layer("2").mul_pj == pytest.approx(T.fp32_mul)


def test_format_model_is_cheaper_than_float_and_fpec_costs_more_than_its_fixed_point():
    from axdnn.nn import LayerSpec, Plan, approximate

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    x = torch.randn(8, 1, 8, 8)

    def total(layers):
        approx = approximate(model, Plan(layers=layers), x)
        report = count_ops(approx, (1, 8, 8))
        return estimate_energy(report, precision_from_model(approx)).total_pj

    fxp = total({"*": LayerSpec(weight_format="fxp:s1.3", act_format="fxp:s3.1")})
    fpec = total({"*": LayerSpec(weight_format="fpec:s1.3", act_format="fpec:s3.1")})
    fxp8 = total({"*": LayerSpec(weight_format="fxp:s1.7", act_format="fxp:s3.5")})
    float_pj = estimate_energy(count_ops(model, (1, 8, 8))).total_pj
    assert fxp < fpec < fxp8 < float_pj


def test_cost_command_prices_a_format_checkpoint(tmp_path):
    from axdnn.experiment.commands import run_cost
    from axdnn.models.checkpoint import Checkpoint, save_checkpoint
    from axdnn.models.registry import build_model
    from axdnn.nn import LayerSpec, Plan, approximate

    model = build_model("digits_cnn", in_channels=1, num_classes=10, width=4)
    plan = Plan(layers={"*": LayerSpec(weight_format="fxp:s1.3", act_format="fxp:s3.1")})
    approx = approximate(model, plan, torch.randn(4, 1, 8, 8))
    path = tmp_path / "ft.pt"
    save_checkpoint(
        path,
        Checkpoint(
            model_name="digits_cnn",
            model_kwargs={"in_channels": 1, "num_classes": 10, "width": 4},
            state_dict=approx.state_dict(),
            data_spec="digits",
            input_shape=(1, 8, 8),
            metrics={},
            extra={"plan": plan.model_dump()},
        ),
    )
    record = run_cost(checkpoint=path)
    layers = {x["name"]: x for x in record["energy"]["layers"]}
    assert layers["fc"]["precision"]["arith"] == "int"
    assert layers["fc"]["precision"]["weight_bits"] == 4
    assert layers["features.0"]["precision"]["act_bits"] == 4
