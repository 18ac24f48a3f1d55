"""The low-rank backend's fused layer path (one input pass: quantize, first chunk's operand
lookup, row and zero-point sums; box sums; float32 convs; output pass) is bit-identical to the
reference for every geometry: kernel sizes, strides, paddings, dilations, groups, pad rows."""

from __future__ import annotations

import kernels_cases as cases
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernels_tables import column_truncation, drum, exact, operand_truncation, random_low_rank

from axdnn.kernels import ActQuant, ZeroPoints, lowrank, lut_conv2d_float, native

pytestmark = pytest.mark.skipif(not native.available(), reason="the fused path needs native")

LOW_RANK = st.sampled_from(
    [
        exact(8, 8),  # one atom
        drum(4),  # decompositions with and without offsets (row/col sums)
        column_truncation(6),  # several atoms
        operand_truncation(2),
        random_low_rank(8, 8, 2, 3),  # denominators
        exact(6, 6, True),  # signed, 6-bit
        exact(4, 4),
    ]
)


def _act(table: torch.Tensor, signed: bool, scale: float, zero: int) -> ActQuant:
    bits = table.shape[0].bit_length() - 1
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return ActQuant(torch.tensor(scale, dtype=torch.float32), min(max(zero, lo), hi), lo, hi, bits)


@settings(max_examples=40, deadline=None)
@given(
    cases.conv_case(LOW_RANK),
    st.floats(0.01, 1.0),
    st.integers(-8, 40),
    st.booleans(),
    st.sampled_from([None, 14]),
    st.integers(0, 10**6),
)
def test_fused_layer_path_matches_reference_for_every_geometry(case, scale, zx, zw_zero, acc, seed):
    x_idx, w, table, geom, _ = case
    signed = bool(table.min() < 0)
    act = _act(table, signed, scale, zx)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(x_idx.shape, generator=gen) * 60 * scale
    half = torch.randint(-200, 200, (x.numel() // 3,), generator=gen).float() + 0.5
    x.view(-1)[: half.numel()] = half * act.scale  # exact half-way points
    zw = torch.zeros(w.shape[0], dtype=torch.long)
    if not zw_zero:
        zw = torch.randint(-3 if signed else 0, 4, (w.shape[0],), generator=gen)
    zero = ZeroPoints(act.zero, zw, signed, signed)
    out_scale = torch.rand(w.shape[0], generator=gen)
    want = lut_conv2d_float(x, act, w, table, geom, zero, out_scale, acc, "reference")
    if lowrank.plan_for(table, w.shape[1], w.shape[2] * w.shape[3]) is None:
        return  # no exact plan for this reduction: the dispatcher never runs lowrank here
    got = lowrank.conv2d_float(x, act, w, table, geom, zero, out_scale, acc)
    assert got.dtype == torch.float32 and torch.equal(got, want)


def test_long_reductions_run_several_chunks_from_the_indices_of_the_input_pass():
    """Several float32 calls: later chunks read the indices the input pass kept."""
    table = exact(8, 8)
    gen = torch.Generator().manual_seed(1)
    act = _act(table, False, 0.02, 3)
    x = torch.rand(2, 300, 4, 4, generator=gen) * 6
    w = torch.randint(0, 256, (3, 300, 3, 3), generator=gen)
    plan = lowrank.plan_for(table, 300, 9)
    assert plan is not None and len(plan.chunks) > 1
    from axdnn.kernels import ConvGeometry

    geom = ConvGeometry.of(3, padding=1)
    zero = ZeroPoints(3, torch.tensor([1, 0, 2]))
    out_scale = torch.rand(3, generator=gen)
    want = lut_conv2d_float(x, act, w, table, geom, zero, out_scale, None, "reference")
    assert torch.equal(lowrank.conv2d_float(x, act, w, table, geom, zero, out_scale), want)


@pytest.mark.parametrize("backend", ["lowrank", "auto"])
def test_activation_codes_wider_than_a_byte_stay_exact(backend):
    """A 10-bit activation table (indices do not fit the fused passes' bytes): `auto` picks
    lowrank for this rank-1 table, which must then compose the chain from exact parts."""
    from axdnn.kernels import ConvGeometry

    table = exact(10, 4)
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(4, 16, 8, 8, generator=gen) * 10
    w = torch.randint(0, 16, (16, 16, 3, 3), generator=gen)
    geom = ConvGeometry.of(3, padding=1)
    act = ActQuant(torch.tensor(0.01), 5, 0, 1023, 10)
    zero = ZeroPoints(5, torch.randint(0, 3, (16,), generator=gen))
    out_scale = torch.rand(16, generator=gen)
    want = lut_conv2d_float(x, act, w, table, geom, zero, out_scale, None, "reference")
    got = lut_conv2d_float(x, act, w, table, geom, zero, out_scale, None, backend)
    assert torch.equal(got, want)
