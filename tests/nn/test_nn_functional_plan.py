"""Functional ops (F.linear, matmul, einsum, conv, attention) as plan targets (issue 14 item 0)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from axdnn.cost import count_ops
from axdnn.errors import ConfigError
from axdnn.inject import OpSites
from axdnn.nn import LayerSpec, Plan, approximate
from axdnn.nn.matmul import approx_matmul


class SelfAttention(nn.Module):
    """One head of self-attention written with F.linear and torch.matmul."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Parameter(0.3 * torch.randn(3 * dim, dim))
        self.out = nn.Parameter(0.3 * torch.randn(dim, dim))

    def forward(self, x):
        q, k, v = F.linear(x, self.qkv).chunk(3, dim=-1)
        scores = torch.matmul(q, k.transpose(-1, -2)) / q.shape[-1] ** 0.5
        return F.linear(torch.matmul(scores.softmax(-1), v), self.out)


class UsersNet(nn.Module):
    """A user's model: a depthwise-separable block, squeeze-excite, self-attention."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.se_w = nn.Parameter(0.3 * torch.randn(16, 16))
        self.attn = SelfAttention(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        h = F.relu(self.pw(F.relu(self.dw(F.relu(self.stem(x))))))
        gate = torch.sigmoid(F.linear(h.mean(dim=(2, 3)), self.se_w))
        h = h * gate[:, :, None, None]
        tokens = h.flatten(2).transpose(1, 2)  # (B, HW, C)
        return self.head(self.attn(tokens).mean(dim=1))


ATTENTION_SITES = {"attn.linear#0", "attn.matmul#0", "attn.matmul#1", "attn.linear#1"}


@pytest.fixture(scope="module")
def net_and_data():
    torch.manual_seed(0)
    return UsersNet().eval(), torch.rand(48, 1, 6, 6), torch.rand(5, 1, 6, 6)


def test_every_mac_bearing_op_is_in_the_report_and_on_the_table(net_and_data):
    net, calib, x = net_and_data
    approx = approximate(net, Plan.uniform("drum:4"), calib)
    records = {r.name: r for r in approx.approximation.layers}
    assert ATTENTION_SITES | {"linear#0"} <= set(records)
    assert all(records[n].status == "approximate" for n in ATTENTION_SITES)
    assert records["attn.matmul#1"].multiplier == "drum:4"
    cost = count_ops(net, (1, 6, 6))
    counted = {layer.name for layer in cost.layers if layer.macs > 0}
    assert counted == set(records)  # the report accounts for 100% of the counted MACs
    with torch.no_grad():
        assert not torch.allclose(approx(x), net(x), atol=1e-3)


def test_table_sites_are_bit_identical_to_the_reference_backend(net_and_data):
    net, calib, x = net_and_data
    outs = []
    for backend in ("auto", "reference"):
        approx = approximate(net, Plan.uniform("drum:4", backend=backend), calib)
        with torch.no_grad():
            outs.append(approx(x))
    assert torch.equal(*outs)


class OneProduct(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 4))

    def forward(self, x):
        return torch.matmul(x, self.w)


def test_a_functional_site_computes_approx_matmul_with_calibrated_ranges():
    torch.manual_seed(1)
    model, calib, x = OneProduct(), torch.randn(32, 6), 2 * torch.randn(7, 6)
    approx = approximate(model, Plan.uniform("mitchell@s8"), calib)
    expected = approx_matmul(
        x, model.w, "mitchell@s8", "reference", a_range=(calib.min(), calib.max())
    )
    with torch.no_grad():
        assert torch.equal(approx(x), expected)  # x beyond the calibrated range saturates


def test_later_patterns_keep_functional_sites_float(net_and_data):
    net, calib, x = net_and_data
    plan = Plan(
        layers={"*": LayerSpec(multiplier="drum:4"), "attn.matmul#*": LayerSpec(multiplier=None)}
    )
    records = {r.name: r for r in approximate(net, plan, calib).approximation.layers}
    assert records["attn.matmul#0"].status == "exact"
    assert "attn.matmul#*" in records["attn.matmul#0"].reason
    assert records["attn.linear#0"].status == "approximate"


def test_unplanned_sites_are_reported_exact_with_the_reason(net_and_data):
    net, calib, _ = net_and_data
    plan = Plan(layers={"attn.*": LayerSpec(multiplier="drum:4")})
    records = {r.name: r for r in approximate(net, plan, calib).approximation.layers}
    assert records["linear#0"].status == "exact"
    assert records["linear#0"].reason == "no plan pattern names it"
    assert records["stem"].status == "exact"


class ThreeWay(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        return torch.einsum("bi,ij,jk->bk", x, self.w, self.w) + x @ self.w


def test_ops_without_a_table_path_are_errors_when_named_and_reported_under_globs():
    calib = torch.randn(8, 4)
    with pytest.raises(ConfigError, match="einsum#0.*3 operands"):
        approximate(ThreeWay(), Plan(layers={"einsum#0": LayerSpec(multiplier="drum:4")}), calib)
    records = {
        r.name: r
        for r in approximate(ThreeWay(), Plan.uniform("drum:4"), calib).approximation.layers
    }
    assert records["einsum#0"].status == "exact" and "3 operands" in records["einsum#0"].reason
    assert records["matmul#0"].status == "approximate"


def test_formats_stay_on_modules_and_say_so(net_and_data):
    net, calib, _ = net_and_data
    plan = Plan(layers={"*": LayerSpec(weight_format="fxp:s2.6")})
    records = {r.name: r for r in approximate(net, plan, calib).approximation.layers}
    assert records["stem"].status == "approximate"
    assert records["attn.matmul#0"].status == "exact"
    assert "number formats" in records["attn.matmul#0"].reason
    explicit = Plan(layers={"attn.matmul#0": LayerSpec(weight_format="fxp:s2.6")})
    with pytest.raises(ConfigError, match="attn.matmul#0"):
        approximate(net, explicit, calib)


def test_state_dict_carries_calibrated_ranges(net_and_data):
    net, calib, x = net_and_data
    plan = Plan.uniform("drum:4")
    approx = approximate(net, plan, calib)
    fresh = approximate(net, plan, None, input_shape=(1, 6, 6))
    fresh.load_state_dict(approx.state_dict())
    with torch.no_grad():
        assert torch.equal(fresh(x), approx(x))
    with pytest.raises(ConfigError, match="input_shape"):
        approximate(net, Plan(layers={"attn.matmul#0": LayerSpec(multiplier="drum:4")}), None)


def test_gradients_flow_through_functional_sites(net_and_data):
    net, calib, x = net_and_data
    approx = approximate(net, Plan.uniform("drum:4"), calib).train()
    F.cross_entropy(approx(x), torch.arange(5)).backward()
    assert approx.attn.qkv.grad is not None and approx.attn.qkv.grad.abs().sum() > 0
    assert approx.se_w.grad is not None and approx.se_w.grad.abs().sum() > 0


def test_injection_sees_the_approximated_sites(net_and_data):
    net, calib, x = net_and_data
    approx = approximate(net, Plan.uniform("drum:4"), calib)
    with torch.no_grad():
        clean = approx(x)
        with OpSites(approx, {"attn.matmul#1": torch.zeros_like}, record=True) as sites:
            hit = approx(x)
    assert ATTENTION_SITES <= set(sites.seen)
    assert "attn.quantize_per_tensor#0" not in sites.seen  # the table's own ops are no sites
    assert not torch.equal(hit, clean)
    with torch.no_grad():
        assert torch.equal(approx(x), clean)


def test_approximating_twice_is_an_error(net_and_data):
    net, calib, _ = net_and_data
    approx = approximate(net, Plan.uniform("drum:4"), calib)
    with pytest.raises(ConfigError, match="already approximate"):
        approximate(approx, Plan.uniform("drum:4"), calib)


def test_the_cost_model_prices_planned_sites_on_their_multiplier(net_and_data):
    from axdnn.cost import estimate_energy, precision_from_model

    net, calib, _ = net_and_data
    ops = count_ops(net, (1, 6, 6))
    approx = approximate(net, Plan.uniform("drum:4"), calib)
    precision = precision_from_model(approx)
    assert precision("attn.matmul#1").arith == precision("stem").arith == "int"
    floated = estimate_energy(ops, precision_from_model(net))
    cheaper = estimate_energy(ops, precision)
    site = {r.name: r for r in cheaper.layers}["attn.matmul#1"]
    assert site.total_pj < {r.name: r for r in floated.layers}["attn.matmul#1"].total_pj
