"""Hypothesis strategies for kernel tests: convolution cases over a given table strategy."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from axdnn.kernels import ConvGeometry


@st.composite
def conv_case(draw, tables):
    """(x indices, w indices, table, geometry, pad index): any groups (depthwise too), kernel,
    stride, padding and dilation, inputs up to 7x7, 1-3 images."""
    table = draw(tables)
    groups = draw(st.sampled_from([1, 2, 3]))
    depthwise = draw(st.booleans())
    cg = 1 if depthwise else draw(st.integers(1, 3))
    og = 1 if depthwise else draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    geom = ConvGeometry.of(
        (kh, kw),
        stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        padding=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        groups=groups,
    )
    h = draw(st.integers(geom.dilation[0] * (kh - 1) + 1, 7))
    w = draw(st.integers(geom.dilation[1] * (kw - 1) + 1, 7))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randint(
        0, table.shape[0], (draw(st.integers(1, 3)), cg * groups, h, w), generator=gen
    )
    wt = torch.randint(0, table.shape[1], (og * groups, cg, kh, kw), generator=gen)
    pad_index = draw(st.integers(0, table.shape[0] - 1))
    return x, wt, table, geom, pad_index
