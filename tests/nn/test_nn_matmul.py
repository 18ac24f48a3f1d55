"""approx_matmul: quantized matmul through a table, exact against integer arithmetic, equal on
every backend, straight-through gradients."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.arith import get_multiplier
from axdnn.nn import approx_matmul
from axdnn.nn.quant import QuantScheme, qparams, quantize_codes


def _codes(t, bits, signed, symmetric):
    scheme = QuantScheme(bits, signed, symmetric=symmetric and signed)
    scale, zero = qparams(t.min(), t.max(), scheme)
    return quantize_codes(t, scale, zero, scheme), scale, zero


@pytest.mark.parametrize("spec", ["exact@u8", "exact@s8", "exact@u4"])
def test_exact_table_is_integer_quantized_matmul(spec):
    torch.manual_seed(0)
    a, b = torch.randn(3, 5, 7), torch.randn(7, 4)
    m = get_multiplier(spec)
    qa, sa, za = _codes(a, m.a_bits, m.a_signed, False)
    qb, sb, zb = _codes(b, m.b_bits, m.b_signed, True)
    acc = (qa - za) @ (qb - zb)  # int64 matmul, exact
    want = acc.to(torch.float32) * (sa * sb)
    assert torch.equal(approx_matmul(a, b, spec), want)


def test_backends_agree_and_batch_dims_broadcast():
    torch.manual_seed(1)
    a, b = torch.rand(2, 1, 6, 9), torch.randn(3, 9, 5)
    outs = [
        approx_matmul(a, b, "mitchell", backend=name) for name in ("reference", "torch", "auto")
    ]
    assert outs[0].shape == (2, 3, 6, 5)
    assert all(torch.equal(outs[0], o) for o in outs[1:])
    assert not torch.equal(outs[0], approx_matmul(a, b, "exact"))


def test_straight_through_gradients_match_the_dequantized_matmul():
    torch.manual_seed(2)
    a = torch.randn(4, 6, requires_grad=True)
    b = torch.randn(6, 3, requires_grad=True)
    y = approx_matmul(a, b, "drum:4@s8", a_range=(-1.0, 1.0))
    g = torch.randn_like(y)
    y.backward(g)
    m = get_multiplier("drum:4@s8")
    qb, sb, zb = _codes(b.detach(), m.b_bits, m.b_signed, True)
    scheme = QuantScheme(m.a_bits, m.a_signed)
    sa, za = qparams(torch.tensor(-1.0), torch.tensor(1.0), scheme)
    qa = quantize_codes(a.detach(), sa, za, scheme)
    inside = (a.detach() / sa + za >= scheme.qmin - 0.5) & (
        a.detach() / sa + za <= scheme.qmax + 0.5
    )
    assert inside.any() and (~inside).any()  # some inputs are clipped by the given range
    assert torch.allclose(a.grad, (g @ ((qb - zb) * sb).T) * inside)
    assert torch.allclose(b.grad, ((qa - za) * sa).T @ g)


@settings(max_examples=30, deadline=None)
@given(
    dims=st.lists(
        st.tuples(st.integers(1, 3), st.sampled_from(["both", "a", "b", "none"])), max_size=3
    ),
    m=st.integers(1, 4),
    k=st.integers(1, 5),
    n=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_broadcast_batches_fold_into_rows_and_columns_bit_identically(dims, m, k, n, seed):
    """Batch dims one operand broadcasts along are folded into the other's rows or columns (one
    wide product instead of many tiny ones); results and gradients equal the expanded product."""
    g = torch.Generator().manual_seed(seed)
    sa = [s if who in ("both", "a") else 1 for s, who in dims]
    sb = [s if who in ("both", "b") else 1 for s, who in dims]
    a = torch.randn(*sa, m, k, generator=g, requires_grad=True)
    b = torch.randn(*sb, k, n, generator=g, requires_grad=True)
    batch = torch.broadcast_shapes(tuple(sa), tuple(sb))
    ea = a.detach().expand(*batch, m, k).contiguous().requires_grad_()
    eb = b.detach().expand(*batch, k, n).contiguous().requires_grad_()
    out, ref = (
        approx_matmul(a, b, "drum:4", "reference"),
        approx_matmul(ea, eb, "drum:4", "reference"),
    )
    assert out.shape == ref.shape and torch.equal(out, ref)
    grad = torch.randn(out.shape, generator=g)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(a.grad, ea.grad.sum_to_size(a.shape))
    torch.testing.assert_close(b.grad, eb.grad.sum_to_size(b.shape))
