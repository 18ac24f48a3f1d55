"""The zero-point MAC and the fused float chain: every backend equals slow, independent references.

Reference for the zero-point MAC (axdnn.kernels.affine): three raw reference convolutions over
tables that read T[a, b], code(a) - zx and code(b), combined per output channel. Reference for the
float chain: quantize with the same formula, the reference MAC, saturate, float32 product.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from kernels_tables import exact, mitchell, random_table, values

from axdnn.errors import ShapeError
from axdnn.kernels import (
    ActQuant,
    ConvGeometry,
    ZeroPoints,
    gather_cpu,
    lut_conv2d,
    lut_conv2d_float,
    lut_linear,
    lut_linear_float,
    native,
    reference,
)
from axdnn.kernels.affine import dequantize, saturate
from axdnn.kernels.factor import factorize

BACKENDS = (
    ["reference", "torch"]
    + (["numba"] if gather_cpu.available() else [])
    + (["native"] if native.available() else [])
)


def _backends(table: torch.Tensor) -> list[str]:
    return BACKENDS + (["lowrank"] if factorize(table) else []) + ["auto"]


def _code_tables(table: torch.Tensor, zero: ZeroPoints) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables whose sums are sum_k (code(x_k) - zx) and sum_k code(w_k)."""
    rows, cols = table.shape
    xa = torch.from_numpy(values(rows.bit_length() - 1, zero.a_signed)) - zero.x
    wb = torch.from_numpy(values(cols.bit_length() - 1, zero.b_signed))
    return xa[:, None].expand(rows, cols).int(), wb[None, :].expand(rows, cols).int()


def reference_mac_conv(x, w, table, geom, zero):
    pad = zero.x & (table.shape[0] - 1)
    tx, tw = _code_tables(table, zero)
    raw = reference.conv2d(x, w, table, geom, pad)
    sx = reference.conv2d(x, w, tx, geom, pad)
    sw = reference.conv2d(x, w, tw, geom, pad)
    return raw - zero.w.reshape(1, -1, 1, 1) * sx - zero.x * sw


def reference_mac_linear(a, b, table, zero):
    tx, tw = _code_tables(table, zero)
    raw = reference.linear(a, b, table)
    return (
        raw
        - zero.w.reshape(1, -1) * reference.linear(a, b, tx)
        - zero.x * reference.linear(a, b, tw)
    )


def _zero(draw, table, outputs, gen):
    bits_a, bits_b = table.shape[0].bit_length() - 1, table.shape[1].bit_length() - 1
    a_signed, b_signed = draw(st.booleans()), draw(st.booleans())
    lo_a = -(1 << (bits_a - 1)) if a_signed else 0
    lo_b = -(1 << (bits_b - 1)) if b_signed else 0
    zx = draw(st.integers(lo_a, lo_a + table.shape[0] - 1))
    zw = torch.randint(lo_b, lo_b + table.shape[1], (outputs,), generator=gen)
    if draw(st.booleans()):
        zw.zero_()  # symmetric weights: the activation-sum term vanishes
    return ZeroPoints(zx, zw, a_signed, b_signed)


@st.composite
def conv_with_zero(draw):
    bits = draw(st.integers(2, 8))
    table = draw(st.sampled_from(["random", "exact", "mitchell", "wide"]))
    table = {
        "random": lambda: random_table(bits, draw(st.integers(2, 8)), draw(st.integers(0, 99))),
        "exact": lambda: exact(bits, bits, draw(st.booleans())),
        "mitchell": lambda: mitchell(),
        "wide": lambda: random_table(bits, bits, 3, lo=-(1 << 22), hi=1 << 22),
    }[table]()
    groups = draw(st.sampled_from([1, 2]))
    cg, og = draw(st.integers(1, 3)), draw(st.sampled_from([1, 3, 17, 33]))
    k = draw(st.integers(1, 3))
    geom = ConvGeometry.of(
        k,
        stride=draw(st.integers(1, 2)),
        padding=draw(st.integers(0, 2)),
        dilation=draw(st.integers(1, 2)),
        groups=groups,
    )
    size = draw(st.integers(geom.dilation[0] * (k - 1) + 1, 8))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randint(
        0, table.shape[0], (draw(st.integers(1, 3)), cg * groups, size, size), generator=gen
    )
    w = torch.randint(0, table.shape[1], (og * groups, cg, k, k), generator=gen)
    return x, w, table, geom, _zero(draw, table, og * groups, gen)


@settings(max_examples=40, deadline=None)
@given(conv_with_zero())
def test_zero_point_conv_matches_reference_on_every_backend(case):
    x, w, table, geom, zero = case
    want = reference_mac_conv(x, w, table, geom, zero)
    for name in _backends(table):
        got = lut_conv2d(x, w, table, geom, backend=name, zero=zero)
        assert torch.equal(got, want), name


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_zero_point_linear_matches_reference_on_every_backend(data):
    table = data.draw(st.sampled_from([mitchell(), exact(8, 8, True), random_table(5, 7, 2)]))
    m, k, o = (
        data.draw(st.integers(1, 40)),
        data.draw(st.integers(1, 50)),
        data.draw(st.integers(1, 70)),
    )
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 10**6)))
    a = torch.randint(0, table.shape[0], (m, k), generator=gen)
    b = torch.randint(0, table.shape[1], (o, k), generator=gen)
    zero = _zero(data.draw, table, o, gen)
    want = reference_mac_linear(a, b, table, zero)
    for name in _backends(table):
        assert torch.equal(lut_linear(a, b, table, backend=name, zero=zero), want), name


def test_exact_table_zero_point_mac_is_ordinary_quantized_convolution():
    """DESIGN.md: with the exact table the MAC is sum (x - zx)(w - zw), padding included."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 6, 7, 7), generator=gen)
    w = torch.randint(0, 256, (40, 3, 3, 3), generator=gen)
    zero = ZeroPoints(17, torch.randint(0, 256, (40,), generator=gen))
    geom = ConvGeometry.of(3, stride=2, padding=1, groups=2)
    want = (
        F.conv2d(
            (x - zero.x).double(), (w - zero.w.reshape(-1, 1, 1, 1)).double(), None, 2, 1, 1, 2
        )
        .round()
        .long()
    )
    for name in _backends(exact(8, 8)):
        assert torch.equal(lut_conv2d(x, w, exact(8, 8), geom, backend=name, zero=zero), want)


def _activations(gen, shape, scale):
    """Random floats plus exact half-way points (x / scale = k + 0.5), saturating and negative
    values: the cases where a fused quantizer could round differently from torch."""
    x = torch.randn(shape, generator=gen) * 80 * scale
    flat = x.view(-1)
    half = torch.randint(-300, 300, (flat.numel() // 3,), generator=gen).float() + 0.5
    flat[: half.numel()] = half * scale
    return x


def reference_float(x, act, w, table, geom, zero, scale, acc_bits):
    codes = (torch.round(x / act.scale) + act.zero).clamp(act.qmin, act.qmax).long()
    idx = codes & ((1 << act.bits) - 1)
    acc = (
        reference_mac_conv(idx, w, table, geom, zero)
        if geom is not None
        else (reference_mac_linear(idx, w, table, zero))
    )
    return dequantize(saturate(acc, acc_bits), scale, 1)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_float_chain_is_bit_identical_to_quantize_mac_dequantize(data):
    """lut_conv2d_float / lut_linear_float on every backend (native fuses the chain) equal
    quantize -> reference MAC -> saturate -> float32 product, bit for bit."""
    table = data.draw(st.sampled_from([mitchell(), exact(8, 8, True), random_table(4, 6, 1)]))
    signed = table is not None and bool(table.min() < 0)
    bits = table.shape[0].bit_length() - 1
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 10**6)))
    scale = torch.tensor(data.draw(st.floats(1e-3, 2.0)), dtype=torch.float32)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    act = ActQuant(scale, data.draw(st.integers(lo, hi)), lo, hi, bits)
    acc_bits = data.draw(st.sampled_from([None, 12, 20]))
    conv = data.draw(st.booleans())
    if conv:
        geom = ConvGeometry.of(3, stride=data.draw(st.integers(1, 2)), padding=1)
        x = _activations(gen, (2, 5, 6, 7), scale)
        o = data.draw(st.sampled_from([2, 20, 40]))
        w = torch.randint(0, table.shape[1], (o, 5, 3, 3), generator=gen)
    else:
        geom = None
        x = _activations(gen, (data.draw(st.integers(1, 30)), 37), scale)
        o = data.draw(st.integers(1, 40))
        w = torch.randint(0, table.shape[1], (o, 37), generator=gen)
    zero = ZeroPoints(act.zero, torch.randint(0, 3, (o,), generator=gen), signed, signed)
    out_scale = torch.rand(o, generator=gen) * 1e-3
    want = reference_float(x, act, w, table, geom, zero, out_scale, acc_bits)
    for name in _backends(table):
        if conv:
            got = lut_conv2d_float(x, act, w, table, geom, zero, out_scale, acc_bits, name)
        else:
            got = lut_linear_float(x, act, w, table, zero, out_scale, acc_bits, name)
        assert got.dtype == torch.float32 and got.is_contiguous() and torch.equal(got, want), name


def test_zero_point_arguments_are_checked():
    table = exact(4, 4)
    x = torch.zeros(1, 2, 3, 3, dtype=torch.long)
    w = torch.zeros(3, 2, 3, 3, dtype=torch.long)
    geom = ConvGeometry.of(3)
    with pytest.raises(ShapeError, match="one weight zero point per output channel"):
        lut_conv2d(x, w, table, geom, zero=ZeroPoints(0, torch.zeros(2, dtype=torch.long)))
    with pytest.raises(ShapeError, match="contradicts"):
        lut_conv2d(x, w, table, geom, pad_index=3, zero=ZeroPoints(1, torch.zeros(3).long()))
    act = ActQuant(torch.tensor(1.0), 0, 0, 255, 8)
    with pytest.raises(ShapeError, match="8-bit activation codes"):
        lut_conv2d_float(
            x.float(), act, w, table, geom, ZeroPoints(0, torch.zeros(3).long()), torch.ones(3)
        )


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_lowrank_fused_float_chain_matches_reference(data):
    """The low-rank backend's fused layer path (quantize, one float32 conv per chunk of atoms,
    one output pass): decompositions with offsets, denominators and several chunks."""
    from kernels_tables import column_truncation, drum, random_low_rank

    table = data.draw(
        st.sampled_from(
            [
                exact(8, 8),
                drum(4),
                column_truncation(6),
                random_low_rank(8, 8, 2, 3),
                exact(6, 6, True),
            ]
        )
    )
    bits = table.shape[0].bit_length() - 1
    signed = bool(table.min() < 0)
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 10**6)))
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    scale = torch.tensor(data.draw(st.floats(0.01, 1.0)), dtype=torch.float32)
    act = ActQuant(scale, data.draw(st.integers(lo, hi)), lo, hi, bits)
    channels = data.draw(st.sampled_from([3, 40]))  # 40 x 9 products: several float32 calls
    groups = data.draw(st.sampled_from([1, 2])) if channels % 2 == 0 else 1
    geom = ConvGeometry.of(3, stride=data.draw(st.integers(1, 2)), padding=1, groups=groups)
    x = _activations(gen, (2, channels, 6, 5), scale)
    o = 4 * groups
    w = torch.randint(0, table.shape[1], (o, channels // groups, 3, 3), generator=gen)
    zw = torch.randint(-3 if signed else 0, 4, (o,), generator=gen)
    zero = ZeroPoints(act.zero, zw, signed, signed)
    out_scale = torch.rand(o, generator=gen)
    acc_bits = data.draw(st.sampled_from([None, 16]))
    want = reference_float(x, act, w, table, geom, zero, out_scale, acc_bits)
    got = lut_conv2d_float(x, act, w, table, geom, zero, out_scale, acc_bits, "lowrank")
    assert torch.equal(got, want)
