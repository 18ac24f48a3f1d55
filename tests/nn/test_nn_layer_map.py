"""The public extension point for layer types: a user's nn.Conv2d subclass and an nn.Conv1d run
under a plan through `approximate(..., layer_map=...)`, with their cost counted, without any
change to axdnn."""

import pytest
import torch
from torch import nn

from axdnn.arith import get_multiplier
from axdnn.cost import count_ops, estimate_energy, precision_from_model
from axdnn.errors import ConfigError
from axdnn.kernels import ConvGeometry
from axdnn.nn import (
    DEFAULT_LAYER_MAP,
    ApproxConv2d,
    ConvOp,
    MultiplierSpec,
    Plan,
    TableLayer,
    approximate,
)


class TaggedConv(nn.Conv2d):
    """A user's conv that only carries a tag: it computes exactly like nn.Conv2d."""

    tag = "mine"


class TableConv1d(TableLayer, nn.Conv1d):
    """A user's product-table Conv1d: the table MAC of a 1 x k Conv2d over an (N, C, 1, L) view."""

    @classmethod
    def from_float(cls, conv: nn.Conv1d, spec: MultiplierSpec, *, name: str = ""):
        layer = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups, conv.bias is not None,
        )  # fmt: skip
        layer.load_state_dict(conv.state_dict())
        layer._setup(spec)
        return layer._named(name)

    def mac_weight(self):
        return self.weight.unsqueeze(2)

    def forward(self, x):
        (k,), (s,), (p,), (d,) = self.kernel_size, self.stride, self.padding, self.dilation
        geom = ConvGeometry.of((1, k), (1, s), (0, p), (1, d), self.groups)
        y = self._table_forward(ConvOp(geom), x.unsqueeze(2)).squeeze(2)
        return y if self.bias is None else y + self.bias.reshape(1, -1, 1)

    def describe(self):
        return f"multiplier={self.multiplier.name}"


LAYER_MAP = {
    **DEFAULT_LAYER_MAP,
    (MultiplierSpec, TaggedConv): ApproxConv2d,
    (MultiplierSpec, nn.Conv1d): TableConv1d,
}


def signal_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Unflatten(1, (1, 4, 16)),
        TaggedConv(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 16, 5),
    )  # fmt: skip


def test_default_map_refuses_the_new_types_and_says_how_to_add_them():
    with pytest.raises(ConfigError, match=r"Conv1d.*cannot approximate"):
        approximate(signal_model(), Plan.uniform("exact"), None)
    plan = Plan(layers={"4": {"multiplier": "exact"}})
    with pytest.raises(ConfigError, match=r"TaggedConv.*subclasses Conv2d.*layer_map"):
        approximate(signal_model(), plan, None)


def test_user_layers_run_under_a_plan_bit_exact_with_the_exact_table():
    model, x = signal_model(), torch.randn(6, 2, 16)
    approx = approximate(model, Plan.uniform("exact@u8"), x, layer_map=LAYER_MAP)
    assert isinstance(approx[0], TableConv1d) and approx[0].layer_name == "0"
    assert isinstance(approx[4], ApproxConv2d) and approx[4].layer_name == "4"
    assert {r.name: r.status for r in approx.approximation.layers} == {
        "0": "approximate", "4": "approximate", "7": "approximate",
    }  # fmt: skip
    # the exact table equals ordinary 8-bit quantized inference: close to float, not equal
    out, ref = approx(x), model(x)
    assert not torch.equal(out, ref)
    assert torch.allclose(out, ref, atol=0.05 * float(ref.abs().max()))


def test_user_conv1d_uses_the_table_it_is_given():
    model, x = signal_model(), torch.randn(6, 2, 16)
    exact = approximate(model, Plan.uniform("exact@u8"), x, layer_map=LAYER_MAP)
    trunc = approximate(model, Plan.uniform("trunc:8@u8"), x, layer_map=LAYER_MAP)
    assert not torch.equal(exact[0](x), trunc[0](x))
    reference = exact[0]
    two_d = ApproxConv2d.from_float(
        nn.Conv2d(2, 4, (1, 3), padding=(0, 1)), MultiplierSpec(multiplier="exact@u8")
    )
    with torch.no_grad():
        two_d.weight.copy_(reference.weight.unsqueeze(2))
        two_d.bias.copy_(reference.bias)
    two_d.act_scale.copy_(reference.act_scale)
    two_d.act_zero.copy_(reference.act_zero)
    two_d.calibrated.fill_(True)
    assert torch.equal(reference(x), two_d(x.unsqueeze(2)).squeeze(2))


def test_user_layers_are_counted_and_priced_by_their_profiles():
    approx = approximate(signal_model(), Plan.uniform("drum:4@u8"), torch.randn(6, 2, 16),
                         layer_map=LAYER_MAP)  # fmt: skip
    report = count_ops(approx, (2, 16))
    assert report.layer("0").macs == 4 * 16 * 2 * 3
    assert report.layer("4").macs == 3 * 4 * 16 * 1 * 9
    energy = estimate_energy(report, precision_from_model(approx))
    float_energy = estimate_energy(count_ops(signal_model(), (2, 16)))
    assert energy.layer("0").mul_pj < float_energy.layer("0").mul_pj
    assert approx[0].hardware_profile().multiplier == get_multiplier("drum:4@u8").name


def test_gradients_flow_through_the_user_layer():
    approx = approximate(signal_model(), Plan.uniform("exact@u8"), torch.randn(6, 2, 16),
                         layer_map=LAYER_MAP)  # fmt: skip
    approx(torch.randn(3, 2, 16)).sum().backward()
    assert approx[0].weight.grad is not None and approx[0].weight.grad.abs().sum() > 0
