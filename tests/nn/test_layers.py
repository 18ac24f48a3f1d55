"""Approximate layers with the exact table equal ordinary integer-quantized inference bit for bit."""

import itertools

import pytest
import torch
from torch import nn

from axdnn.nn import ApproxConv2d, ApproxLinear, Plan, approximate


def hand_codes(x, scale, zero, qmin, qmax):
    """Round half to even, add the zero point, saturate: the textbook quantizer."""
    return torch.clamp(torch.round(x / scale) + zero, qmin, qmax).to(torch.int64)


def hand_int_conv(xq, wq, stride, padding, dilation, groups):
    """Integer convolution by explicit loops over outputs (int64, no float anywhere)."""
    n, c, h, w = xq.shape
    o, cg, kh, kw = wq.shape
    xp = torch.zeros(n, c, h + 2 * padding, w + 2 * padding, dtype=torch.int64)
    xp[:, :, padding : padding + h, padding : padding + w] = xq
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (w + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = torch.zeros(n, o, oh, ow, dtype=torch.int64)
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                patch = xp[
                    :,
                    g * cg : (g + 1) * cg,
                    i * stride : i * stride + dilation * (kh - 1) + 1 : dilation,
                    j * stride : j * stride + dilation * (kw - 1) + 1 : dilation,
                ]
                out[:, oc, i, j] = (patch * wq[oc]).sum(dim=(1, 2, 3))
    return out


def _qrange(layer, which):
    scheme = layer.a_scheme if which == "a" else layer.b_scheme
    qmin = -scheme.qmax if scheme.symmetric and scheme.signed else scheme.qmin
    return qmin, scheme.qmax


CONV_OPTIONS = list(
    itertools.product(
        [1, 2], [0, 1, 2], [1, 2], [1, 2], [True, False], [True, False], ["u8", "s8", "u4"]
    )
)


@pytest.mark.parametrize("stride,padding,dilation,groups,bias,per_channel,domain", CONV_OPTIONS)
def test_exact_table_conv_matches_integer_conv(
    stride, padding, dilation, groups, bias, per_channel, domain
):
    torch.manual_seed(stride * 100 + padding * 10 + dilation + groups)
    conv = nn.Conv2d(4, 6, 3, stride, padding, dilation, groups, bias=bias)
    x = torch.randn(2, 4, 7, 7)
    plan = Plan.uniform(f"exact@{domain}", per_channel=per_channel)
    model = approximate(nn.Sequential(conv), plan, x)
    layer = model[0]
    assert isinstance(layer, ApproxConv2d)
    xs, xz = layer.act_scale, layer.act_zero
    ws, wz = layer.weight_qparams()
    xq = hand_codes(x, xs, xz, *_qrange(layer, "a")) - xz
    wq = hand_codes(conv.weight, ws.view(-1, 1, 1, 1), wz.view(-1, 1, 1, 1), *_qrange(layer, "b"))
    wq = wq - wz.view(-1, 1, 1, 1)
    acc = hand_int_conv(xq, wq, stride, padding, dilation, groups)
    expected = acc.to(torch.float32) * (xs * ws).view(1, -1, 1, 1)
    if bias:
        expected = expected + conv.bias.view(1, -1, 1, 1)
    with torch.no_grad():
        assert torch.equal(model(x), expected)


@pytest.mark.parametrize(
    "domain,per_channel,bias",
    list(itertools.product(["u8", "s8", "s5"], [True, False], [True, False])),
)
def test_exact_table_linear_matches_integer_matmul_over_leading_dims(domain, per_channel, bias):
    torch.manual_seed(1)
    lin = nn.Linear(9, 5, bias=bias)
    x = torch.randn(3, 4, 9)
    model = approximate(
        nn.Sequential(lin), Plan.uniform(f"exact@{domain}", per_channel=per_channel), x
    )
    layer = model[0]
    assert isinstance(layer, ApproxLinear)
    xs, xz = layer.act_scale, layer.act_zero
    ws, wz = layer.weight_qparams()
    xq = hand_codes(x, xs, xz, *_qrange(layer, "a")) - xz
    wq = hand_codes(lin.weight, ws.view(-1, 1), wz.view(-1, 1), *_qrange(layer, "b")) - wz.view(
        -1, 1
    )
    acc = torch.zeros(3, 4, 5, dtype=torch.int64)
    for o in range(5):
        acc[..., o] = (xq * wq[o]).sum(-1)
    expected = acc.to(torch.float32) * (xs * ws)
    if bias:
        expected = expected + lin.bias
    with torch.no_grad():
        assert torch.equal(model(x), expected)


def test_approximate_leaves_the_original_untouched():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    approx = approximate(model, Plan.uniform("drum:4"), torch.randn(4, 1, 8, 8))
    assert isinstance(model[0], nn.Conv2d) and not isinstance(model[0], ApproxConv2d)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(approx[0], ApproxConv2d) and isinstance(approx[3], ApproxLinear)


@pytest.mark.parametrize(
    "spec,acc_bits,width",
    [
        ("mitchell", None, 3),
        ("mitchell", 16, 40),
        ("drum:4@s8", None, 40),
        ("trunc:5@u4", 12, 20),
        ("udm", None, 40),
    ],
)
def test_training_and_eval_forward_agree(spec, acc_bits, width):
    """Inference (fused float chain) and the autograd forward give the same numbers, bit for bit."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, groups=2 if width % 2 == 0 else 1),
        nn.Flatten(),
        nn.Linear(width * 16, 4),
    )
    x = torch.randn(5, 2, 6, 6)
    approx = approximate(model, Plan.uniform(spec, acc_bits=acc_bits), x)
    approx.eval()
    with torch.no_grad():
        y_eval = approx(x)
    approx.train()
    y_train = approx(x)
    assert torch.equal(y_eval, y_train.detach())


def test_approximate_output_differs_from_exact_for_an_approximate_table():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3))
    x = torch.randn(4, 2, 6, 6)
    exact = approximate(model, Plan.uniform("exact"), x)(x)
    approx = approximate(model, Plan.uniform("trunc:8"), x)(x)
    assert not torch.equal(exact, approx)
