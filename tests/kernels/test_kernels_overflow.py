"""Every backend stays exact where one output's sum of table products passes 2^31 (issue 22).

An int32 accumulator there wraps by 2^32, and the float layer path then flips the output's sign.
The shapes are a wide 9x9 layer (K = 412 x 81 = 33372 products per output) with 8-bit unsigned
codes near 255 and the exact table (products near 65025): sums of about 2.15e9, just above 2^31,
on batch 1 and a 1x2 output so that the slow backends stay fast.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from kernels_tables import exact

from axdnn.errors import ConfigError
from axdnn.kernels import (
    ActQuant,
    ConvGeometry,
    ZeroPoints,
    choose_backend,
    lut_conv2d,
    lut_conv2d_float,
    lut_linear,
    lut_linear_float,
    lut_matmul,
    native,
    reference,
)
from axdnn.kernels.affine import conv_correction, dequantize, linear_correction

CPU = torch.device("cpu")
BOUND = 1 << 31
# (backend, native kernel forced or None): every native kernel, whichever the cost model picks
BACKENDS = [
    ("reference", None),
    ("torch", None),
    ("numba", None),
    ("lowrank", None),
    ("native", None),
    ("native", native.SLAB),
    ("native", native.DIRECT),
    ("native", native.COLUMN),
    ("auto", None),
]
IDS = [name if kernel is None else f"native-kernel{kernel}" for name, kernel in BACKENDS]
GEOM = ConvGeometry.of(9)
CHANNELS = 412  # K = 412 * 81 = 33372
OUT = 4


def _use(monkeypatch, name: str, kernel: int | None, table: torch.Tensor) -> None:
    """Skip a backend this machine cannot run (with its reason); force a native kernel."""
    if name != "auto":
        try:
            choose_backend(table, CPU, name)
        except ConfigError as exc:
            pytest.skip(f"backend {name!r} is unavailable here: {exc}")
    if kernel is not None:
        if kernel == native.COLUMN and not native._has_column_kernel():
            pytest.skip("the column kernel needs AVX-512BW")
        monkeypatch.setattr(native, "FORCE_KERNEL", kernel)


def _codes(gen: torch.Generator, shape, lo: int, hi: int) -> torch.Tensor:
    codes = torch.randint(lo, hi + 1, shape, generator=gen)
    return codes.to(torch.uint8) if hi < 256 else codes


def _conv_operands(table_cols: int = 256):
    """Activations 254..255; output channels: all 255, 254..255, all 0, anything (indices into
    a table of `table_cols` columns whose top entries are the largest)."""
    gen = torch.Generator().manual_seed(22)
    x = _codes(gen, (1, CHANNELS, 9, 10), 254, 255)
    top = table_cols - 1
    w = torch.stack(
        [
            torch.full((CHANNELS, 9, 9), top),
            _codes(gen, (CHANNELS, 9, 9), top - 1, top).long(),
            torch.zeros((CHANNELS, 9, 9), dtype=torch.int64),
            _codes(gen, (CHANNELS, 9, 9), 0, top).long(),
        ]
    )
    return x, w.to(torch.uint8) if table_cols <= 256 else w


def _over_the_bound(want: torch.Tensor, dim: int) -> None:
    """The test is only meaningful if channels 0 and 1 pass 2^31."""
    assert bool((want.select(dim, 0) >= BOUND).all()) and bool((want.select(dim, 1) >= BOUND).all())


ZEROS = [None, ZeroPoints(0, torch.zeros(OUT, dtype=torch.int64)),
         ZeroPoints(1, torch.tensor([0, 0, 3, 7]))]  # fmt: skip


@pytest.mark.parametrize("name,kernel", BACKENDS, ids=IDS)
def test_conv_sums_past_2_31_are_exact(monkeypatch, name, kernel):
    table = exact()
    _use(monkeypatch, name, kernel, table)
    x, w = _conv_operands()
    raw = reference.conv2d(x, w, table, GEOM)
    for zero in ZEROS if name != "torch" else ZEROS[:1]:  # torch: K Python steps a call
        want = raw if zero is None else raw + conv_correction(x, w, (256, 256), GEOM, zero)
        _over_the_bound(want, 1)
        got = lut_conv2d(x, w, table, GEOM, backend=name, zero=zero)
        assert torch.equal(got, want), (zero, (got - want).unique())


@pytest.mark.parametrize("name,kernel", BACKENDS, ids=IDS)
def test_conv_float_layer_chain_does_not_flip_sign(monkeypatch, name, kernel):
    """lut_conv2d_float is what approximate layers run in inference (native fuses it)."""
    if name == "torch":
        pytest.skip("composed from raw sums as for numba and reference; K Python steps a call")
    table = exact()
    _use(monkeypatch, name, kernel, table)
    x, w = _conv_operands()
    act = ActQuant(torch.tensor(1.0), 0, 0, 255, 8)
    scale = torch.full((OUT,), 1e-6)
    for zero in ZEROS[1:]:
        want = reference.conv2d(x, w, table, GEOM) + conv_correction(x, w, (256, 256), GEOM, zero)
        _over_the_bound(want, 1)
        for acc_bits in (None, 40):
            got = lut_conv2d_float(x.float(), act, w, table, GEOM, zero, scale, acc_bits, name)
            assert torch.equal(got, dequantize(want, scale, 1)), (zero, acc_bits, got)
            assert bool((got[:, :2] > 2000).all())  # about 2150: positive, not -2145


@pytest.mark.parametrize("name,kernel", BACKENDS, ids=IDS)
def test_wide_uint16_table_past_2_31_is_exact(monkeypatch, name, kernel):
    """A 256 x 512 table spanning at most 65535 (uint16 slabs not built by word permutes)."""
    if name == "torch":
        pytest.skip("K Python steps a call; torch runs the bound in the other tests")
    a = torch.arange(256, dtype=torch.int32)
    table = (a[:, None] * (torch.arange(512, dtype=torch.int32) // 2)[None, :]).contiguous()
    _use(monkeypatch, name, kernel, table)
    x, w = _conv_operands(512)
    want = reference.conv2d(x, w, table, GEOM)
    _over_the_bound(want, 1)
    assert torch.equal(lut_conv2d(x, w, table, GEOM, backend=name), want)


@pytest.mark.parametrize("name,kernel", BACKENDS, ids=IDS)
def test_offset_slab_sums_past_2_31_are_exact(monkeypatch, name, kernel):
    """Zero products over K = 810 x 81 > 65536 taps: kernels that store T - base - 32768 (signed
    16-bit slabs) sum -32768 per tap there, past -2^31."""
    if name == "torch":
        pytest.skip("no offset representation; 65610 Python steps would make the test slow")
    table = exact()
    _use(monkeypatch, name, kernel, table)
    gen = torch.Generator().manual_seed(7)
    x = torch.zeros((1, 810, 9, 9), dtype=torch.uint8)
    w = _codes(gen, (2, 810, 9, 9), 0, 255)
    got = lut_conv2d(x, w, table, GEOM, backend=name)
    assert torch.equal(got, torch.zeros((1, 2, 1, 1), dtype=torch.int64)), got.flatten()


@pytest.mark.parametrize("name,kernel", BACKENDS, ids=IDS)
def test_linear_and_matmul_past_2_31_are_exact(monkeypatch, name, kernel):
    table = exact()
    _use(monkeypatch, name, kernel, table)
    x, w = _conv_operands()
    a = x[0, :, :, :9].reshape(1, -1).expand(2, -1).contiguous()  # (2, 33372)
    b = w.reshape(OUT, -1)
    raw = reference.linear(a, b, table)
    for zero in ZEROS:
        want = raw if zero is None else raw + linear_correction(a, b, (256, 256), zero)
        _over_the_bound(want, 1)
        assert torch.equal(lut_linear(a, b, table, backend=name, zero=zero), want), zero
        if name == "torch":
            return  # K Python steps a call: one is enough
    assert torch.equal(lut_matmul(a, b.T.contiguous(), table, backend=name), raw)
    zero = ZEROS[2]
    want = raw + linear_correction(a, b, (256, 256), zero)
    act = ActQuant(torch.tensor(1.0), 0, 0, 255, 8)
    scale = torch.full((OUT,), 1e-6)
    got = lut_linear_float(a.float(), act, b, table, zero, scale, None, name)
    assert torch.equal(got, dequantize(want, scale, 1))
    assert bool((got[:, :2] > 2000).all())


@pytest.mark.parametrize("name,kernel", BACKENDS, ids=IDS)
def test_large_entry_table_past_2_31_is_exact(monkeypatch, name, kernel):
    """Entries near 2^23 pass 2^31 after 256 products (int32 slabs, per-block flushes)."""
    gen = torch.Generator().manual_seed(5)
    table = torch.randint(-(1 << 23), 1 << 23, (256, 256), generator=gen, dtype=torch.int32)
    table[200:, 200:] = (1 << 23) - 1 - torch.randint(0, 1000, (56, 56), generator=gen)
    _use(monkeypatch, name, kernel, table)
    x = _codes(gen, (1, 8, 9, 10), 200, 255)
    w = torch.cat([_codes(gen, (2, 8, 9, 9), 200, 255), _codes(gen, (2, 8, 9, 9), 0, 255)])
    want = reference.conv2d(x, w, table, GEOM)
    _over_the_bound(want, 1)
    assert torch.equal(lut_conv2d(x, w, table, GEOM, backend=name), want)
    a, b = x[0, :, :, :9].reshape(1, -1), w.reshape(OUT, -1)
    assert torch.equal(lut_linear(a, b, table, backend=name), reference.linear(a, b, table))


LAYER_BACKENDS = [b for b in BACKENDS if b[0] != "torch"]  # torch: K Python steps a call


@pytest.mark.parametrize(
    "name,kernel", LAYER_BACKENDS, ids=[IDS[BACKENDS.index(b)] for b in LAYER_BACKENDS]
)
def test_approximate_wide_layer_keeps_its_sign(monkeypatch, name, kernel):
    """Through axdnn.nn.approximate: a wide 9x9 conv whose codes sit near 255 on the exact
    multiplier gives the float conv's positive outputs (within quantization), on every backend."""
    from axdnn.nn import Plan, approximate

    _use(monkeypatch, name, kernel, exact())
    gen = torch.Generator().manual_seed(3)
    conv = nn.Conv2d(CHANNELS, 2, 9, bias=False)
    with torch.no_grad():
        conv.weight.copy_(0.99 + 0.01 * torch.rand(conv.weight.shape, generator=gen))
        conv.weight[:, 0, 0, 0] = 0.0  # weight range [0, 1]: codes near 255, zero point 0
    model = nn.Sequential(conv).eval()
    x = 0.99 + 0.01 * torch.rand((1, CHANNELS, 9, 10), generator=gen)
    x[0, 0, 0, 0] = 0.0
    approx = approximate(model, Plan.uniform("exact@u8", backend=name), x)
    with torch.no_grad():
        want = model(x)
        got = approx(x)
    assert bool((got > 0).all()), got.flatten()
    torch.testing.assert_close(got, want, rtol=2e-2, atol=0)
