"""The training path (fused forward, gradients from the saved input) against the composed
`TableMac`: forward bit for bit, straight-through gradients bit for bit, table gradients within
float rounding."""

import pytest
import torch

from axdnn.arith import get_multiplier
from axdnn.kernels import ConvGeometry
from axdnn.nn import ApproxConv2d, ApproxLinear
from axdnn.nn.functional import ConvOp, LinearOp, TableMac, TableOperands
from axdnn.nn.gradients import table_gradient
from axdnn.nn.layers import FusedTableMac
from axdnn.nn.plan import MultiplierSpec

SPECS = ["drum:4@u8", "trunc:10", "exact@s8", "mitchell", "trunc:5@u4"]
CONVS = [  # (in, out, kernel, stride, padding, dilation, groups)
    (3, 8, 3, 1, 1, 1, 1),
    (4, 6, 3, 2, 2, 1, 2),
    (2, 5, 5, 1, 0, 2, 1),
    (6, 6, 3, 1, 1, 1, 3),
]


def _layer(kind: str, shape, spec: str, gradient: str, per_channel: bool, seed: int):
    torch.manual_seed(seed)
    if kind == "conv":
        cin, cout, k, s, p, d, g = shape
        float_layer = torch.nn.Conv2d(cin, cout, k, s, p, d, g)
        x = torch.randn(3, cin, 9, 9)
    else:
        float_layer = torch.nn.Linear(shape[0], shape[1])
        x = torch.randn(7, shape[0])
    cls = ApproxConv2d if kind == "conv" else ApproxLinear
    mspec = MultiplierSpec(multiplier=spec, gradient=gradient, per_channel=per_channel)
    layer = cls.from_float(float_layer, mspec)
    layer.start_calibration(seed=seed)
    layer(x[:2] * 0.8)  # calibrated on a narrower range: some inputs saturate
    layer.finish_calibration()
    return layer, x


def _op(layer):
    if isinstance(layer, ApproxConv2d):
        geom = ConvGeometry.of(
            layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.groups
        )
        return ConvOp(geom)
    return LinearOp()


def _run(fn, layer, x, operands):
    """Output and gradients of the MAC alone (no bias) under a fixed random upstream gradient."""
    x = x.clone().requires_grad_(True)
    w = layer.weight
    w.grad = None
    args = (x, w, _op(layer), operands, layer.act_scale, layer.act_zero, layer.weight_codes())
    y = fn.apply(*args, True) if fn is TableMac else fn.apply(*args)
    torch.manual_seed(1)
    y.backward(torch.randn_like(y))
    return y.detach(), x.grad, w.grad.clone()


def _cases():
    for spec in SPECS:
        for shape in CONVS:
            yield "conv", shape, spec
        yield "linear", (12, 5), spec


@pytest.mark.parametrize("kind,shape,spec", list(_cases()))
@pytest.mark.parametrize("per_channel", [False, True])
def test_straight_through_training_path_is_bit_identical(kind, shape, spec, per_channel):
    layer, x = _layer(kind, shape, spec, "ste", per_channel, seed=len(spec) + shape[1])
    y0, gx0, gw0 = _run(TableMac, layer, x, layer.operands)
    y1, gx1, gw1 = _run(FusedTableMac, layer, x, layer.operands)
    assert torch.equal(y0, y1)
    assert torch.equal(gx0, gx1)
    assert torch.equal(gw0, gw1)


@pytest.mark.parametrize("kind,shape,spec", list(_cases()))
def test_table_gradient_training_path_matches_the_composed_one(kind, shape, spec):
    layer, x = _layer(kind, shape, spec, "table", True, seed=3 + shape[0])
    m = get_multiplier(spec)
    # the composed path with every factor of the SVD kept, noise terms included
    full = table_gradient(m.table, m.a_signed, m.b_signed, 8, rtol=0.0)
    ops = layer.operands
    composed = TableOperands(ops.table, ops.a_scheme, ops.b_scheme, "table", full, ops.backend)
    y0, gx0, gw0 = _run(TableMac, layer, x, composed)
    y1, gx1, gw1 = _run(FusedTableMac, layer, x, layer.operands)
    assert torch.equal(y0, y1)
    torch.testing.assert_close(gx1, gx0, rtol=1e-4, atol=1e-5 * float(gx0.abs().max()))
    torch.testing.assert_close(gw1, gw0, rtol=1e-4, atol=1e-5 * float(gw0.abs().max()))


def test_factors_drop_only_singular_values_below_float_rounding():
    drum = get_multiplier("drum:4@u8")
    g = table_gradient(drum.table, False, False, 8)
    assert g.ua.shape[1] == g.ub.shape[1] == 1  # drum's difference tables have rank 1
    trunc = get_multiplier("mitchell")
    full = table_gradient(trunc.table, False, False, 8, rtol=0.0)
    kept = table_gradient(trunc.table, False, False, 8)
    assert 1 < kept.ua.shape[1] <= full.ua.shape[1] == 8


def test_weight_codes_are_computed_once_per_optimizer_step():
    layer, x = _layer("conv", CONVS[0], "drum:4@u8", "ste", False, seed=0)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    calls = []
    original = layer._weight_codes_of
    layer._weight_codes_of = lambda w: calls.append(1) or original(w)
    for _ in range(3):
        opt.zero_grad()
        layer(x).square().sum().backward()
        layer(x)  # a second forward at the same weights reuses the codes
        opt.step()
    assert len(calls) == 3
