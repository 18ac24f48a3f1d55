"""kernels.reference against naive Python loops on tiny inputs."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernels_tables import random_table

from axdnn.kernels import ConvGeometry, reference


def naive_conv(x, w, table, geom: ConvGeometry, pad_index: int) -> torch.Tensor:
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    og = o // geom.groups
    ho, wo = geom.output_size((h, wd))
    out = torch.zeros(n, o, ho, wo, dtype=torch.int64)
    for b in range(n):
        for oc in range(o):
            g = oc // og
            for y in range(ho):
                for xx in range(wo):
                    total = 0
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                iy = y * geom.stride[0] - geom.padding[0] + i * geom.dilation[0]
                                ix = xx * geom.stride[1] - geom.padding[1] + j * geom.dilation[1]
                                inside = 0 <= iy < h and 0 <= ix < wd
                                a = int(x[b, g * cg + ci, iy, ix]) if inside else pad_index
                                total += int(table[a, int(w[oc, ci, i, j])])
                    out[b, oc, y, xx] = total
    return out


@st.composite
def conv_case(draw):
    na, nb = draw(st.integers(2, 8)), draw(st.integers(2, 8))
    groups = draw(st.integers(1, 2))
    cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    geom = ConvGeometry.of(
        (kh, kw),
        stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        padding=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        groups=groups,
    )
    h = draw(st.integers(geom.dilation[0] * (kh - 1) + 1, 5))
    w = draw(st.integers(geom.dilation[1] * (kw - 1) + 1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 1 << na, (draw(st.integers(1, 2)), cg * groups, h, w), generator=gen)
    wt = torch.randint(0, 1 << nb, (og * groups, cg, kh, kw), generator=gen)
    table = random_table(na, nb, seed)
    pad_index = draw(st.integers(0, (1 << na) - 1))
    return x, wt, table, geom, pad_index


@settings(max_examples=25, deadline=None)
@given(conv_case())
def test_reference_conv_matches_naive_loops(case):
    x, w, table, geom, pad_index = case
    assert torch.equal(
        reference.conv2d(x, w, table, geom, pad_index), naive_conv(x, w, table, geom, pad_index)
    )


def naive_matmul(a, b, table) -> torch.Tensor:
    m, k = a.shape
    n = b.shape[1]
    return torch.tensor(
        [[sum(int(table[a[i, q], b[q, j]]) for q in range(k)) for j in range(n)] for i in range(m)],
        dtype=torch.int64,
    ).view(m, n)


@settings(max_examples=20, deadline=None)
@given(
    st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.integers(0, 10**6), st.booleans()
)
def test_reference_matmul_and_linear_match_naive_loops(m, k, n, seed, batched):
    table = random_table(3, 4, seed)
    gen = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 8, (2, 1, m, k) if batched else (m, k), generator=gen)
    b = torch.randint(0, 16, (3, k, n) if batched else (k, n), generator=gen)
    got = reference.matmul(a, b, table)
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    ae = a.expand(*batch, m, k).reshape(-1, m, k)
    be = b.expand(*batch, k, n).reshape(-1, k, n)
    want = torch.stack([naive_matmul(ae[i], be[i], table) for i in range(ae.shape[0])])
    assert torch.equal(got, want.view(*batch, m, n))
    if not batched:
        assert torch.equal(reference.linear(a, b.T.contiguous(), table), want[0])
