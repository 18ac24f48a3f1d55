"""Format layers: per-layer weight/activation formats in plans, the compensated FPEC MAC, PACT's
learnable alpha, checkpoints rebuilt with `approximate(model, plan, None)`."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from axdnn.errors import ConfigError, FormatError
from axdnn.formats import Fpec, parse_format
from axdnn.nn import FormatConv2d, FormatLinear, FormatSpec, LayerSpec, Plan, approximate


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)
    )


def slow_compensated_linear(x, w, b, fx: Fpec, fw: Fpec):
    """Explicit sums over k: stored product plus x*e_w + w*e_x where not skipped (ZEB clear)."""
    ex, ew = fx.encode(x), fw.encode(w)
    out = torch.zeros(x.shape[0], w.shape[0], dtype=torch.float64)
    for n in range(x.shape[0]):
        for o in range(w.shape[0]):
            acc = 0.0
            for k in range(x.shape[1]):
                xq, xe = float(ex.value[n, k]), float(ex.comp[n, k])
                wq, we = float(ew.value[o, k]), float(ew.comp[o, k])
                acc += xq * wq + (xq * we if we != 0 else 0.0) + (wq * xe if xe != 0 else 0.0)
            out[n, o] = acc + float(b[o])
    return out


def test_fpec_linear_computes_the_compensated_mac():
    torch.manual_seed(1)
    lin = nn.Linear(6, 3)
    layer = FormatLinear.from_float(
        lin, FormatSpec(weight_format="fpec:s1.3,c=1", act_format="fpec:s3.2,c=2")
    )
    x = torch.randn(4, 6)
    want = slow_compensated_linear(
        x,
        lin.weight.detach(),
        lin.bias.detach(),
        parse_format("fpec:s3.2,c=2"),
        parse_format("fpec:s1.3,c=1"),
    )
    assert torch.allclose(layer(x).double(), want, atol=1e-5)


def test_fpec_conv_equals_fixed_point_conv_plus_compensation_and_differs_from_it():
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
    layer = FormatConv2d.from_float(
        conv, FormatSpec(weight_format="fpec:s1.3,c=0", act_format="fpec:s3.2,c=0")
    )
    x = torch.randn(2, 3, 7, 7)
    fw, fx = parse_format("fpec:s1.3"), parse_format("fpec:s3.2")
    ew, ex = fw.encode(conv.weight.detach()), fx.encode(x)
    plain = F.conv2d(ex.value, ew.value, None, 2, 1)
    comp = F.conv2d(ex.value, ew.comp, None, 2, 1) + F.conv2d(ex.comp, ew.value, None, 2, 1)
    got = layer(x)
    assert torch.allclose(got, plain + comp, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-3)
    exact = conv(x)
    assert (got - exact).abs().mean() < (plain - exact).abs().mean()  # compensation helps


def test_fixed_point_layer_quantizes_both_operands_and_passes_gradients():
    conv = small_model()[0]
    layer = FormatConv2d.from_float(
        conv, FormatSpec(weight_format="fxp:s1.3", act_format="fxp:s2.2")
    )
    x = torch.randn(2, 2, 5, 5, requires_grad=True)
    wq = parse_format("fxp:s1.3").quantize(conv.weight.detach())
    xq = parse_format("fxp:s2.2").quantize(x.detach())
    assert torch.equal(layer(x), F.conv2d(xq, wq, conv.bias, padding=1))
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
    assert layer.weight.grad.abs().sum() > 0


def test_plan_routes_formats_and_reports_them():
    plan = Plan(
        layers={
            "*": LayerSpec(weight_format="fxp:s1.7", act_format="fxp:s4.4"),
            "3": LayerSpec(multiplier="exact"),
            "0": LayerSpec(act_format="fp8_e4m3"),
        }
    )
    approx = approximate(small_model(), plan, torch.randn(8, 2, 5, 5))
    assert isinstance(approx[0], FormatConv2d) and approx[0].weight_format is None
    assert type(approx[3]).__name__ == "ApproxLinear"
    rec = {r.name: r for r in approx.approximation.layers}
    assert rec["0"].status == "approximate" and rec["0"].act_format == "fp8_e4m3"
    assert rec["0"].weight_format is None and rec["0"].multiplier is None
    assert rec["3"].multiplier == "exact" and rec["3"].act_format is None
    assert approx.approximation.to_dict()["layers"][0]["act_format"] == "fp8_e4m3"


def test_spec_without_multiplier_or_formats_stays_float():
    approx = approximate(small_model(), Plan(layers={"*": LayerSpec()}), torch.randn(4, 2, 5, 5))
    assert type(approx[0]) is nn.Conv2d
    assert all(r.status == "exact" for r in approx.approximation.layers)


def test_format_beside_multiplier_is_a_config_error_naming_the_pattern():
    with pytest.raises(ConfigError, match="beside multiplier"):
        LayerSpec(multiplier="drum:4", weight_format="int8")
    data = {"layers": {"fc": {"multiplier": "exact", "act_format": "int8"}}}
    with pytest.raises(ConfigError, match=r"pattern 'fc'.*act_format='int8'"):
        Plan.from_dict(data, source="plan file 'p.yaml'")


def test_bad_format_names_the_key_and_the_pattern(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("layers:\n  conv1: {act_format: 'fxp:z9'}\n")
    with pytest.raises(FormatError, match=r"p\.yaml.*conv1.*fxp:z9.*act_format"):
        Plan.load(path)
    with pytest.raises(ConfigError, match="PACT"):
        approximate(small_model(), Plan(layers={"0": LayerSpec(weight_format="pact:4")}), None)


def test_plan_with_formats_round_trips(tmp_path):
    plan = Plan(layers={"*": LayerSpec(weight_format="fpec:s1.5,c=1", act_format="pact:4")})
    assert Plan.load(plan.save(tmp_path / "p.yaml")) == plan


def test_pact_alpha_is_learned_and_calibrated():
    plan = Plan(layers={"3": LayerSpec(act_format="pact:3")})
    x = torch.randn(16, 2, 5, 5)
    approx = approximate(small_model(), plan, x)
    layer = approx[3]
    assert "act_alpha" in dict(layer.named_parameters())
    with torch.no_grad():
        top = float(torch.relu(approx[0](x)).max())
    assert float(layer.act_alpha) == pytest.approx(top, rel=1e-6)  # starts at the largest input
    plan = Plan(layers={"3": LayerSpec(act_format="pact:3,alpha=0.5")})
    fixed = approximate(small_model(), plan, x)
    assert float(fixed[3].act_alpha) == 0.5
    out = fixed(x).sum()
    out.backward()
    assert fixed[3].act_alpha.grad is not None and fixed[3].act_alpha.grad != 0


def test_state_dict_reloads_into_an_uncalibrated_rebuild():
    plan = Plan(layers={"*": LayerSpec(weight_format="fpec:s1.4,c=1", act_format="pact:4")})
    x = torch.randn(8, 2, 5, 5)
    trained = approximate(small_model(), plan, x)
    with torch.no_grad():
        trained[3].act_alpha.fill_(1.25)
    rebuilt = approximate(small_model(), plan, None)
    rebuilt.load_state_dict(trained.state_dict())
    assert float(rebuilt[3].act_alpha) == 1.25
    assert torch.equal(rebuilt(x), trained(x))


def test_hardware_profiles_describe_formats_and_multipliers():
    plan = Plan(
        layers={
            "0": LayerSpec(weight_format="fpec:s1.4,c=1", act_format="fpec:u3.3,c=2"),
            "3": LayerSpec(multiplier="drum:4@u8"),
        }
    )
    approx = approximate(small_model(), plan, torch.relu(torch.randn(8, 2, 5, 5)))
    p = approx[0].hardware_profile()
    assert (p.weight_bits, p.act_bits, p.arith) == (5, 6, "int")
    assert (p.weight_extra_bits, p.act_extra_bits) == (3, 4)
    assert (p.weight_comp_bits, p.act_comp_bits) == (2, 3)
    assert 0 < p.weight_comp_fraction <= 1 and 0 < p.act_comp_fraction <= 1
    q = approx[3].hardware_profile()
    assert (q.weight_bits, q.act_bits, q.multiplier) == (8, 8, "drum:4@u8")
    assert q.mul_energy_scale == 1.0
    f = FormatLinear.from_float(
        nn.Linear(3, 2), FormatSpec(weight_format="bf16", act_format="fp8_e4m3")
    ).hardware_profile()
    assert (f.arith, f.man_bits, f.weight_bits, f.act_bits) == ("float", 7, 16, 8)
