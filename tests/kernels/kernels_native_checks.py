"""Checks the native backend against the reference on random tables and shapes: raw sums, zero
points, the fused float chain and linear maps; and sums past 2^31. test_kernels_native.py calls
`check_native` for each kernel, and runs this file as a script (printing the vector lanes, then
'ok') for each instruction-set build."""

import torch
from kernels_tables import exact, mitchell, random_table

from axdnn.kernels import ActQuant, ConvGeometry, ZeroPoints, native, reference
from axdnn.kernels.affine import conv_correction, dequantize, linear_correction, quantize


def check_native(seed: int = 0) -> None:
    """Raise AssertionError at the first result that differs from the reference."""
    gen = torch.Generator().manual_seed(seed)
    for trial, table in enumerate(
        [
            mitchell(),
            random_table(8, 8, 1, lo=-(1 << 21), hi=1 << 21),  # int32 slabs
            random_table(4, 6, 2),
            random_table(8, 9, 3, lo=0, hi=60000),  # uint16 but too wide for in-register rows
        ]
    ):
        rows, cols = table.shape
        for og, groups in ((40, 1), (20, 2), (3, 1)):
            geom = ConvGeometry.of(3, stride=1 + trial % 2, padding=1, groups=groups)
            x = torch.randint(0, rows, (3, 4 * groups, 11, 9), generator=gen)
            w = torch.randint(0, cols, (og * groups, 4, 3, 3), generator=gen)
            signed = trial % 2 == 1  # indices read as two's complement codes
            zx = -3 if signed else 3
            zero = ZeroPoints(zx, torch.randint(0, cols, (og * groups,), generator=gen), signed)
            assert torch.equal(
                native.conv2d(x, w, table, geom, 5), reference.conv2d(x, w, table, geom, 5)
            )
            want = reference.conv2d(x, w, table, geom, zx & (rows - 1)) + conv_correction(
                x, w, (rows, cols), geom, zero
            )
            assert torch.equal(native.conv2d(x, w, table, geom, zero=zero), want)
            xf = torch.randn(3, 4 * groups, 9, 7, generator=gen) * 20
            act = ActQuant(torch.tensor(0.37), 3, 0, rows - 1, rows.bit_length() - 1)
            idx = quantize(xf, act.scale, act.zero, act.qmin, act.qmax)
            scale = torch.rand(og * groups, generator=gen)
            fzero = ZeroPoints(act.zero, zero.w)  # unsigned codes 0..rows-1, like act
            want = reference.conv2d(idx, w, table, geom, 3) + conv_correction(
                idx, w, (rows, cols), geom, fzero
            )
            got = native.conv2d_float(xf, act, w, table, geom, fzero, scale)
            assert torch.equal(got, dequantize(want, scale, 1))
        a = torch.randint(0, rows, (70, 33), generator=gen)
        b = torch.randint(0, cols, (50, 33), generator=gen)
        zero = ZeroPoints(1, torch.randint(0, cols, (50,), generator=gen))
        want = reference.linear(a, b, table) + linear_correction(a, b, (rows, cols), zero)
        assert torch.equal(native.linear(a, b, table, zero), want)
    # reductions past 256 taps of entries up to 65535: the 16-bit partial sums of the byte-plane
    # column kernel are widened every 256 taps
    wide = random_table(8, 8, 5, lo=0, hi=65535)
    wide[:, :2], wide[0, 2] = 65535, 0
    a = torch.randint(0, 256, (70, 600), generator=gen)
    b = torch.randint(0, 2, (5, 600), generator=gen)
    assert torch.equal(native.linear(a, b, wide), reference.linear(a, b, wide))


def check_overflow() -> None:
    """Every kernel at sums just above 2^31 (a wide 9x9 layer, codes 254..255 on the exact table)
    and at K > 65536 taps (signed slabs sum -32768 per zero product); see
    test_kernels_overflow.py."""
    gen = torch.Generator().manual_seed(22)
    table = exact()
    geom = ConvGeometry.of(9)
    x = torch.randint(254, 256, (1, 412, 9, 10), generator=gen).to(torch.uint8)
    w = torch.randint(254, 256, (3, 412, 9, 9), generator=gen).to(torch.uint8)
    w[2] = 0
    zero = ZeroPoints(1, torch.tensor([0, 0, 3]))
    want = reference.conv2d(x, w, table, geom) + conv_correction(x, w, (256, 256), geom, zero)
    assert int(want[:, :2].min()) >= 1 << 31
    act = ActQuant(torch.tensor(1.0), 0, 0, 255, 8)
    scale = torch.full((3,), 1e-6)
    x0 = torch.zeros((1, 810, 9, 9), dtype=torch.uint8)
    w0 = torch.randint(0, 256, (2, 810, 9, 9), generator=gen).to(torch.uint8)
    saved = native.FORCE_KERNEL
    try:
        for kernel in (native.SLAB, native.DIRECT, native.COLUMN):
            native.FORCE_KERNEL = kernel
            assert torch.equal(native.conv2d(x, w, table, geom, zero=zero), want), kernel
            got = native.conv2d_float(x.float(), act, w, table, geom, zero, scale)
            assert torch.equal(got, dequantize(want, scale, 1)), kernel
            assert not native.conv2d(x0, w0, table, geom).any(), kernel
    finally:
        native.FORCE_KERNEL = saved


if __name__ == "__main__":
    assert native.available(), "the native build failed"
    print(native.lanes())
    check_native()
    check_overflow()
    print("ok")
