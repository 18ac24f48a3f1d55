"""DoReFa, binary (BWN/XNOR) and ternary (TWN) weight formats against their published formulas."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.formats import Binary, DoReFa, Ternary, parse_format

weights = st.lists(st.floats(-3, 3), min_size=2, max_size=40)


def ref_dorefa(w: np.ndarray, k: int) -> np.ndarray:
    n = 2**k - 1
    t = np.tanh(w)
    r = t / (2 * np.abs(t).max()) + 0.5
    return 2 * (np.round(r * n) / n) - 1


@settings(max_examples=50, deadline=None)
@given(k=st.integers(2, 8), ws=weights)
def test_dorefa_matches_formula_grid_monotone(k: int, ws: list[float]) -> None:
    w = torch.tensor(ws, dtype=torch.float64)
    if float(w.abs().max()) == 0.0:
        return
    q = DoReFa(k).quantize(w)
    ref = ref_dorefa(np.array(ws), k)
    # away from exact ties the formula and the tensor code agree to the bit
    n = 2**k - 1
    t = np.tanh(np.array(ws))
    frac = (t / (2 * np.abs(t).max()) + 0.5) * n % 1
    clear = np.abs(frac - 0.5) > 1e-9
    assert np.array_equal(q.numpy()[clear], ref[clear])
    assert bool((q.abs() <= 1).all()) and float(q.abs().max()) == 1.0
    i = (q + 1) / 2 * n
    assert torch.allclose(i, i.round(), atol=1e-9)
    order = torch.argsort(w)
    assert bool((q[order][1:] >= q[order][:-1]).all())


def test_dorefa_gradient_is_the_normalisation_derivative() -> None:
    w = torch.tensor([-1.5, -0.2, 0.3, 0.9, 2.0], dtype=torch.float64, requires_grad=True)
    up = torch.tensor([1.0, -2.0, 0.5, 3.0, 1.0], dtype=torch.float64)
    (DoReFa(3).quantize(w) * up).sum().backward()
    w2 = w.detach().clone().requires_grad_(True)
    t = torch.tanh(w2)
    (((2 * (t / (2 * t.abs().max()) + 0.5)) - 1) * up).sum().backward()  # rounding -> identity
    assert torch.allclose(w.grad, w2.grad)


def test_dorefa_one_bit_and_full_precision() -> None:
    w = torch.tensor([-2.0, 0.0, 0.5, 1.5], requires_grad=True)
    q = DoReFa(1).quantize(w)
    assert q.tolist() == [-1.0, 1.0, 1.0, 1.0]  # sign (0 -> +1) times mean|w| = 1
    q.sum().backward()
    assert w.grad.tolist() == [1.0] * 4
    assert DoReFa(32).quantize(w) is w


@settings(max_examples=50, deadline=None)
@given(ws=weights, per_channel=st.booleans())
def test_binary_formula_idempotent(ws: list[float], per_channel: bool) -> None:
    w = torch.tensor(ws, dtype=torch.float64)
    w = w.reshape(2, -1) if len(ws) % 2 == 0 else w
    fmt = Binary(per_channel)
    q = fmt.quantize(w)
    rows = w.reshape(w.shape[0], -1) if per_channel and w.dim() == 2 else w.reshape(1, -1)
    qr = q.reshape(rows.shape)
    for r, qrow in zip(rows, qr, strict=True):
        scale = r.abs().mean()
        want = torch.where(r < 0, -scale, scale)
        assert torch.equal(qrow, want)
    # idempotent up to the rounding of the mean of equal magnitudes
    assert torch.allclose(fmt.quantize(q), q, rtol=1e-12, atol=0)
    if not per_channel:
        order = torch.argsort(w.flatten())
        assert bool((q.flatten()[order][1:] >= q.flatten()[order][:-1]).all())


def test_binary_ste_clipped_at_one() -> None:
    w = torch.tensor([-1.5, -0.5, 0.0, 1.0, 1.2], requires_grad=True)
    Binary().quantize(w).sum().backward()
    assert w.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def ref_ternary(w: np.ndarray, ratio: float = 0.7) -> np.ndarray:
    delta = ratio * np.abs(w).mean()
    keep = np.abs(w) > delta
    alpha = np.abs(w[keep]).mean() if keep.any() else 0.0
    return alpha * np.sign(w) * keep


@settings(max_examples=50, deadline=None)
# ratio < 1: at ratio 1 with equal magnitudes every weight sits exactly on the threshold, and
# whether it survives depends on how the mean rounds, so idempotence is not defined there.
@given(ws=weights, ratio=st.sampled_from([0.7, 0.5, 0.9]))
def test_ternary_formula_idempotent(ws: list[float], ratio: float) -> None:
    w = torch.tensor(ws, dtype=torch.float64)
    fmt = Ternary(ratio=ratio)
    q = fmt.quantize(w)
    assert np.allclose(q.numpy(), ref_ternary(np.array(ws), ratio), rtol=1e-12, atol=0)
    assert len(set(q.abs().tolist()) - {0.0}) <= 1
    assert torch.allclose(fmt.quantize(q), q, rtol=1e-12, atol=0)
    order = torch.argsort(w)
    assert bool((q[order][1:] >= q[order][:-1]).all())


def test_ternary_per_channel_and_gradient() -> None:
    w = torch.tensor([[1.0, -0.1, 0.5, -2.0], [0.01, 0.02, -0.03, 0.0]], requires_grad=True)
    q = parse_format("ternary,per_channel=on").quantize(w)
    for row, qrow in zip(w.detach().numpy(), q.detach().numpy(), strict=True):
        assert np.allclose(qrow, ref_ternary(row))
    q.sum().backward()
    assert w.grad.tolist() == [[1.0] * 4, [1.0] * 4]  # TWN: plain straight-through
    assert Ternary().bits == 2 and Binary().bits == 1


@pytest.mark.parametrize("fmt", [Binary(), Ternary(), DoReFa(4)])
def test_empty_and_zero_tensors(fmt) -> None:
    assert fmt.quantize(torch.empty(0)).numel() == 0
    q = fmt.quantize(torch.zeros(3))
    if isinstance(fmt, DoReFa):  # the 4-bit DoReFa grid 2i/15 - 1 has no zero; 0 -> 1/15
        assert torch.allclose(q, torch.full((3,), 1 / 15))
    else:
        assert torch.equal(q, torch.zeros(3))
