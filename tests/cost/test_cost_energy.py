"""Energy model: hand arithmetic on a tiny model, width scaling, YAML tables and their errors."""

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from axdnn.cost import count_ops
from axdnn.cost.energy import (
    HOROWITZ_45NM,
    HOROWITZ_45NM_YAML,
    EnergyReport,
    EnergyTable,
    LayerPrecision,
    estimate_energy,
)
from axdnn.errors import AxError, ConfigError


@pytest.fixture
def tiny():
    """Linear 4 -> 3 without bias: 12 MACs, 12 weights, 4 inputs, 3 outputs per sample."""
    return count_ops(nn.Linear(4, 3, bias=False), (4,))


def test_horowitz_defaults():
    t = HOROWITZ_45NM
    assert (t.int8_add, t.int8_mul, t.int32_add, t.int32_mul) == (0.03, 0.2, 0.1, 3.1)
    assert (t.fp16_add, t.fp16_mul, t.fp32_add, t.fp32_mul) == (0.4, 1.1, 0.9, 3.7)
    assert (t.sram_64b, t.dram_64b) == (10.0, 2000.0)
    assert 1300.0 <= t.dram_64b <= 2600.0


def test_fp32_default_by_hand(tiny):
    e = estimate_energy(tiny)
    layer = e.layers[0]
    assert layer.compute_pj == pytest.approx(12 * (3.7 + 0.9))
    assert layer.memory_bits == (12 + 4 + 3) * 32
    assert layer.memory_pj == pytest.approx(608 / 64 * 10.0)
    assert e.total_pj == pytest.approx(55.2 + 95.0)
    assert e.memory == "sram"


def test_int8_by_hand_sram_dram_none(tiny):
    p = LayerPrecision.integer(8, 8, 32)
    sram = estimate_energy(tiny, p).layers[0]
    assert (sram.mul_pj, sram.add_pj) == pytest.approx((0.2, 0.1))
    assert sram.compute_pj == pytest.approx(12 * 0.3)
    assert (sram.weight_bits_moved, sram.act_bits_moved) == (96, 56)
    assert sram.memory_pj == pytest.approx(152 / 64 * 10.0)
    dram = estimate_energy(tiny, p, memory="dram").layers[0]
    assert dram.memory_pj == pytest.approx(152 / 64 * 2000.0)
    assert estimate_energy(tiny, p, memory="none").total_pj == pytest.approx(3.6)


def test_narrow_int_scale_and_extra_bits(tiny):
    p = LayerPrecision(
        weight_bits=4,
        act_bits=8,
        acc_bits=16,
        arith="int",
        mul_energy_scale=0.5,
        extra_bits_per_value=2,
    )
    layer = estimate_energy(tiny, p).layers[0]
    mul = 0.2 * 4 * 8 / 64 * 0.5
    add = 0.03 + (16 - 8) * (0.1 - 0.03) / 24
    assert (layer.mul_pj, layer.add_pj) == pytest.approx((mul, add))
    assert layer.compute_pj == pytest.approx(12 * (mul + add))
    assert layer.weight_bits_moved == 12 * (4 + 2)
    assert layer.act_bits_moved == 7 * (8 + 2)


def test_fp16(tiny):
    layer = estimate_energy(tiny, LayerPrecision.fp16()).layers[0]
    assert layer.compute_pj == pytest.approx(12 * 1.5)
    assert layer.memory_bits == 19 * 16


def test_skipped_macs_cost_no_compute_but_keep_traffic(tiny):
    p = LayerPrecision.integer()
    full = estimate_energy(tiny, p).layers[0]
    part = estimate_energy(tiny.with_skipped({tiny.layers[0].name: 5}), p).layers[0]
    assert part.effective_macs == 7
    assert part.compute_pj == pytest.approx(7 * 0.3)
    assert part.memory_pj == full.memory_pj


def test_per_layer_precision_and_activation_products():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4, bias=False)

        def forward(self, x):  # x: (B, 2, 4)
            y = self.fc(x)
            return y @ y.transpose(-1, -2)  # activation x activation: 4 outputs * 4

    report = count_ops(Net(), (2, 4))
    precs = {"fc": LayerPrecision.integer(4, 8), "matmul#0": LayerPrecision.integer(4, 6)}
    e = estimate_energy(report, precs.__getitem__)
    assert e.layer("fc").mul_pj == pytest.approx(0.2 * 32 / 64)
    assert e.layer("matmul#0").mul_pj == pytest.approx(0.2 * 36 / 64)  # act_bits twice
    assert e.layer("matmul#0").weight_bits_moved == 0
    assert e.total_compute_pj == pytest.approx(sum(x.compute_pj for x in e.layers))
    with pytest.raises(ConfigError, match="must return a LayerPrecision"):
        estimate_energy(report, lambda name: 8)  # type: ignore[arg-type,return-value]


def test_multiplier_energy_is_quadratic_in_width():
    t = HOROWITZ_45NM
    assert t.int_mul(8, 8) == pytest.approx(t.int8_mul)
    assert t.int_mul(16, 16) == pytest.approx(4 * t.int8_mul)
    assert t.int_mul(4, 4) == pytest.approx(t.int8_mul / 4)
    assert t.int_mul(32, 32) == pytest.approx(t.int32_mul, rel=0.05)  # 3.2 vs published 3.1
    assert t.int_add(8) == pytest.approx(t.int8_add)
    assert t.int_add(32) == pytest.approx(t.int32_add)
    assert t.int_add(20) == pytest.approx((t.int8_add + t.int32_add) / 2)


@settings(max_examples=30, deadline=None)
@given(a=st.integers(1, 32), b=st.integers(1, 32), k=st.integers(1, 4))
def test_multiplier_scaling_property(a, b, k):
    t = HOROWITZ_45NM
    assert t.int_mul(a * k, b) == pytest.approx(k * t.int_mul(a, b))
    assert t.int_mul(a, b) == pytest.approx(t.int_mul(b, a))
    assert t.int_add(a + 1) > t.int_add(a)


def test_energy_report_json(tiny):
    e = estimate_energy(tiny, LayerPrecision.integer())
    d = json.loads(json.dumps(e.to_dict()))
    assert d["total_pj"] == pytest.approx(e.total_pj)
    assert d["layers"][0]["precision"]["arith"] == "int"
    assert d["table"]["name"] == "horowitz-45nm"
    assert EnergyReport.from_dict(d) == e


def test_shipped_yaml_equals_defaults(tmp_path):
    assert EnergyTable.from_yaml(HOROWITZ_45NM_YAML) == HOROWITZ_45NM
    t = HOROWITZ_45NM.model_copy(update={"name": "x", "int8_mul": 0.1})
    t.to_yaml(tmp_path / "t.yaml")
    assert EnergyTable.from_yaml(tmp_path / "t.yaml") == t


def _write(tmp_path, **changes):
    data = HOROWITZ_45NM.model_dump()
    data.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del data[key]
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_yaml_table_for_another_node_changes_energy(tmp_path, tiny):
    table = EnergyTable.from_yaml(
        _write(tmp_path, name="n7", node_nm=7, int8_mul=0.05, int8_add=0.01, int32_add=0.04)
    )
    layer = estimate_energy(tiny, LayerPrecision.integer(), table=table).layers[0]
    assert layer.mul_pj == pytest.approx(0.05)
    assert layer.add_pj == pytest.approx(0.04)


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"int8_mul": -1.0}, "int8_mul"),
        ({"sram_64b": "fast"}, "sram_64b"),
        ({"dram_64b": None}, r"missing key\(s\) \['dram_64b'\]"),
        ({"int9_mul": 0.3}, "int9_mul"),
        ({"fp32_add": float("inf")}, "fp32_add"),
    ],
)
def test_yaml_errors_name_file_and_key(tmp_path, changes, pattern):
    path = _write(tmp_path, **changes)
    with pytest.raises(ConfigError, match=pattern) as info:
        EnergyTable.from_yaml(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, AxError)


def test_yaml_file_level_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        EnergyTable.from_yaml(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("int8_add: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        EnergyTable.from_yaml(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        EnergyTable.from_yaml(bad)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"weight_bits": 0}, "weight_bits"),
        ({"acc_bits": 65}, "acc_bits"),
        ({"arith": "bf16"}, "arith"),
        ({"mul_energy_scale": -0.1}, "mul_energy_scale"),
        ({"extra_bits_per_value": -1}, "extra_bits_per_value"),
    ],
)
def test_precision_validation(kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        LayerPrecision(**kwargs)


def test_bad_memory_level_and_precision(tiny):
    with pytest.raises(ConfigError, match="'l3'"):
        estimate_energy(tiny, memory="l3")
    with pytest.raises(ConfigError, match="LayerPrecision"):
        estimate_energy(tiny, precision=8)  # type: ignore[arg-type]


def test_default_energy_grows_with_model_size():
    small = count_ops(nn.Conv2d(3, 4, 3), (3, 8, 8))
    big = count_ops(nn.Conv2d(3, 8, 3), (3, 8, 8))
    assert estimate_energy(big).total_compute_pj == pytest.approx(
        2 * estimate_energy(small).total_compute_pj
    )
