"""Functional MAC ops written as matrix products equal the torch functions (axdnn.nn.products)."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.nn.products import Unsupported, decompose

torch.manual_seed(0)


def mm(a, b, k):
    return torch.matmul(a, b)


def close(a, b):
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 4), (4, 5)),
        ((4,), (4, 2)),
        ((3, 4), (4,)),
        ((2, 3, 4), (4, 5)),
        ((2, 1, 3, 4), (5, 4, 2)),
    ],
)
def test_matmul_shapes(shapes):
    a, b = torch.randn(shapes[0]), torch.randn(shapes[1])
    close(decompose("matmul", (a, b), {}, mm), torch.matmul(a, b))


def test_rmatmul_order():
    a, b = torch.randn(3, 4), torch.randn(4, 5)
    close(decompose("matmul", (b, a), {}, mm, reversed_operands=True), a @ b)


def test_addmm_baddbmm_linear():
    base, m1, m2 = torch.randn(3, 5), torch.randn(3, 4), torch.randn(4, 5)
    close(
        decompose("addmm", (base, m1, m2), {"beta": 0.5, "alpha": 2}, mm),
        torch.addmm(base, m1, m2, beta=0.5, alpha=2),
    )
    bb, b1, b2 = torch.randn(2, 3, 5), torch.randn(2, 3, 4), torch.randn(2, 4, 5)
    close(decompose("baddbmm", (bb, b1, b2), {}, mm), torch.baddbmm(bb, b1, b2))
    x, w, bias = torch.randn(2, 7, 4), torch.randn(6, 4), torch.randn(6)
    close(decompose("linear", (x, w, bias), {}, mm), F.linear(x, w, bias))
    close(decompose("linear", (x, w), {}, mm), F.linear(x, w))


@settings(max_examples=40, deadline=None)
@given(
    groups=st.sampled_from([1, 2]),
    k=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    bias=st.booleans(),
)
def test_conv2d_as_products(groups, k, stride, padding, dilation, bias):
    x = torch.randn(2, 4, 7, 6)
    w = torch.randn(6, 4 // groups, k, k)
    b = torch.randn(6) if bias else None
    args = (x, w, b, stride, padding, dilation, groups)
    close(decompose("conv2d", args, {}, mm), F.conv2d(*args))


def test_conv2d_keywords_same_padding_and_conv1d():
    x, w = torch.randn(1, 3, 6, 6), torch.randn(4, 3, 3, 3)
    close(
        decompose("conv2d", (x,), {"weight": w, "padding": "same"}, mm),
        F.conv2d(x, w, padding="same"),
    )
    close(decompose("conv2d", (x[0], w), {}, mm), F.conv2d(x[0], w))
    x1, w1 = torch.randn(2, 4, 9), torch.randn(6, 2, 3)
    close(
        decompose("conv1d", (x1, w1, None, 2, 1, 1, 2), {}, mm), F.conv1d(x1, w1, None, 2, 1, 1, 2)
    )


@pytest.mark.parametrize(
    "equation,sa,sb",
    [
        ("ij,jk->ik", (3, 4), (4, 5)),
        ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
        ("bij,bkj->bki", (2, 3, 4), (2, 5, 4)),
        ("i,i->", (4,), (4,)),
        ("i,j->ij", (3,), (4,)),
        ("bnij,nj->bni", (2, 3, 4, 5), (3, 5)),  # capsule votes
        ("bij,bjd->bid", (2, 6, 3), (2, 3, 8)),
        ("bhqd,bhkd->bhqk", (2, 2, 3, 4), (2, 2, 5, 4)),
        ("...ij,...jk->...ik", (2, 3, 4), (2, 4, 5)),
        ("ij,kl->ik", (3, 4), (5, 6)),  # indices summed away on each side
        ("bi,bi->b", (3, 4), (3, 4)),
    ],
)
def test_einsum_as_products(equation, sa, sb):
    a, b = torch.randn(sa), torch.randn(sb)
    close(decompose("einsum", (equation, a, b), {}, mm), torch.einsum(equation, a, b))
    close(decompose("einsum", (equation, [a, b]), {}, mm), torch.einsum(equation, a, b))


@pytest.mark.parametrize(
    "equation,shapes",
    [
        ("ii,ij->j", ((3, 3), (3, 4))),
        ("ij,jk,kl->il", ((2, 3), (3, 4), (4, 5))),
        ("ij,jk", ((2, 3), (3, 4))),
    ],
)
def test_einsum_unsupported_forms_say_why(equation, shapes):
    with pytest.raises(Unsupported):
        decompose("einsum", (equation, *[torch.randn(s) for s in shapes]), {}, mm)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("mask", [None, "bool", "float"])
def test_sdpa_as_products(causal, mask):
    q, k, v = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 6)
    m = None
    if mask == "bool":
        m = torch.rand(5, 5) > 0.3
        m[:, 0] = True
    elif mask == "float":
        m = torch.randn(5, 5)
    if causal and m is not None:
        return  # torch refuses both at once
    close(
        decompose("sdpa", (q, k, v, m, 0.0, causal), {}, mm),
        F.scaled_dot_product_attention(q, k, v, m, 0.0, causal),
    )


def test_each_product_is_numbered():
    seen = []

    def counting(a, b, k):
        seen.append(k)
        return a @ b

    q = torch.randn(1, 3, 4)
    decompose("sdpa", (q, q, q), {}, counting)
    assert seen == [0, 1]
