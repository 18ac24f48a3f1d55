"""Checks one build of the native backend against the reference (run as a subprocess by
test_kernels_native.py with $AXDNN_NATIVE_ARCH set); prints the vector lanes, then 'ok'."""

import torch
from kernels_tables import mitchell, random_table

from axdnn.kernels import ActQuant, ConvGeometry, ZeroPoints, native, reference
from axdnn.kernels.affine import conv_correction, dequantize, linear_correction, quantize

assert native.available(), "the native build failed"
print(native.lanes())
gen = torch.Generator().manual_seed(0)
for trial, table in enumerate(
    [mitchell(), random_table(8, 8, 1, lo=-(1 << 21), hi=1 << 21), random_table(4, 6, 2)]
):
    rows, cols = table.shape
    for og, groups in ((40, 1), (20, 2), (3, 1)):
        geom = ConvGeometry.of(3, stride=1 + trial % 2, padding=1, groups=groups)
        x = torch.randint(0, rows, (3, 4 * groups, 9, 7), generator=gen)
        w = torch.randint(0, cols, (og * groups, 4, 3, 3), generator=gen)
        zero = ZeroPoints(3, torch.randint(0, cols, (og * groups,), generator=gen))
        assert torch.equal(
            native.conv2d(x, w, table, geom, 5), reference.conv2d(x, w, table, geom, 5)
        )
        want = reference.conv2d(x, w, table, geom, 3) + conv_correction(
            x, w, (rows, cols), geom, zero
        )
        assert torch.equal(native.conv2d(x, w, table, geom, zero=zero), want)
        xf = torch.randn(3, 4 * groups, 9, 7, generator=gen) * 20
        act = ActQuant(torch.tensor(0.37), 3, 0, rows - 1, rows.bit_length() - 1)
        idx = quantize(xf, act.scale, act.zero, act.qmin, act.qmax)
        scale = torch.rand(og * groups, generator=gen)
        want = reference.conv2d(idx, w, table, geom, 3) + conv_correction(
            idx, w, (rows, cols), geom, zero
        )
        got = native.conv2d_float(xf, act, w, table, geom, zero, scale)
        assert torch.equal(got, dequantize(want, scale, 1))
    a = torch.randint(0, rows, (70, 33), generator=gen)
    b = torch.randint(0, cols, (50, 33), generator=gen)
    zero = ZeroPoints(1, torch.randint(0, cols, (50,), generator=gen))
    want = reference.linear(a, b, table) + linear_correction(a, b, (rows, cols), zero)
    assert torch.equal(native.linear(a, b, table, zero), want)
print("ok")
