"""Every kernel backend is bit-identical to kernels.reference: random, structured, signed-style and
EvoApprox tables; random shapes, strides, paddings, dilations, groups and pad indices."""

from __future__ import annotations

import kernels_cases as cases
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernels_tables import (
    column_truncation,
    drum,
    evoapprox_tables,
    exact,
    mitchell,
    operand_truncation,
    random_low_rank,
    random_table,
)

from axdnn.errors import ConfigError, ShapeError
from axdnn.kernels import (
    ConvGeometry,
    choose_backend,
    gather_cpu,
    list_backends,
    lowrank,
    lut_conv2d,
    lut_linear,
    lut_matmul,
    native,
    reference,
)
from axdnn.kernels.factor import factorize

EVO = evoapprox_tables()
GATHER_BACKENDS = (
    ["torch"]
    + (["numba"] if gather_cpu.available() else [])
    + (["native"] if native.available() else [])
)


def table_strategy():
    """(table, description) of any 2^n x 2^m shape, n, m in 2..8, structured or random."""
    bits = st.integers(2, 8)
    return st.one_of(
        st.builds(lambda n, m, s: random_table(n, m, s), bits, bits, st.integers(0, 10**6)),
        st.builds(
            lambda n, m, r, s: random_low_rank(n, m, r, s),
            bits,
            bits,
            st.integers(0, 4),
            st.integers(0, 10**6),
        ),
        st.builds(lambda n, m, sg: exact(n, m, sg), bits, bits, st.booleans()),
        st.sampled_from([drum(4), column_truncation(8), operand_truncation(3)]),
    )


def conv_case(table=None):
    """A convolution case over `table` (a strategy; default: any table)."""
    return cases.conv_case(table_strategy() if table is None else table)


def _backends_for(table: torch.Tensor) -> list[str]:
    return GATHER_BACKENDS + (["lowrank"] if factorize(table) else []) + ["auto"]


@settings(max_examples=40, deadline=None)
@given(conv_case())
def test_conv_backends_match_reference(case):
    x, w, table, geom, pad_index = case
    want = reference.conv2d(x, w, table, geom, pad_index)
    for name in _backends_for(table):
        got = lut_conv2d(x, w, table, geom, pad_index=pad_index, backend=name)
        assert got.dtype == torch.int64 and got.is_contiguous(), name  # layout reaches later ops
        assert torch.equal(got, want), name


@settings(max_examples=15, deadline=None)
@given(
    conv_case(
        table=st.sampled_from([exact(8, 8), column_truncation(4), random_low_rank(5, 5, 2, 2)])
    )
)
def test_lowrank_torch_and_gemm_paths_match_reference(case):
    """The torch-ops and unfold + GEMM paths (CUDA's defaults) are exact too; checked on CPU."""
    x, w, table, geom, pad_index = case
    want = reference.conv2d(x, w, table, geom, pad_index)
    assert torch.equal(lowrank.conv2d(x, w, table, geom, pad_index, conv_impl="gemm"), want)
    assert torch.equal(lowrank.conv2d(x, w, table, geom, pad_index, fused=False), want)


@pytest.mark.skipif(not gather_cpu.available(), reason="needs numba")
@settings(max_examples=10, deadline=None)
@given(conv_case(table=st.sampled_from([exact(8, 8), drum(4), random_low_rank(5, 5, 2, 2)])))
def test_lowrank_numba_passes_match_reference(case):
    """Without the native library the fused CPU path runs its passes in numba; also exact."""
    x, w, table, geom, pad_index = case
    want = reference.conv2d(x, w, table, geom, pad_index)
    original = lowrank._cpu_passes
    lowrank._cpu_passes = lambda table: gather_cpu.kernels()
    try:
        assert torch.equal(lowrank.conv2d(x, w, table, geom, pad_index), want)
    finally:
        lowrank._cpu_passes = original


@settings(max_examples=30, deadline=None)
@given(
    table_strategy(),
    st.integers(1, 5),
    st.integers(1, 40),
    st.integers(1, 5),
    st.sampled_from([((), ()), ((2,), ()), ((3, 1), (2,)), ((1,), (4, 1))]),
    st.integers(0, 10**6),
)
def test_matmul_backends_match_reference_with_broadcasting(table, m, k, n, batches, seed):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randint(0, table.shape[0], (*batches[0], m, k), generator=gen)
    b = torch.randint(0, table.shape[1], (*batches[1], k, n), generator=gen)
    want = reference.matmul(a, b, table)
    for name in _backends_for(table):
        assert torch.equal(lut_matmul(a, b, table, backend=name), want), name
    if not batches[0] and not batches[1]:
        bt = b.T.contiguous()
        for name in _backends_for(table):
            assert torch.equal(lut_linear(a, bt, table, backend=name), want), name


@pytest.mark.parametrize("rows,k,cols", [(300, 70, 40), (20, 64, 300), (3, 2000, 5)])
def test_gather_matmul_orientations_and_long_reductions(rows, k, cols):
    """Slab over either operand, the direct loop, and int32 block overflow are all exact."""
    table = random_table(8, 8, 7, lo=0, hi=1 << 20)
    gen = torch.Generator().manual_seed(1)
    a = torch.randint(0, 256, (rows, k), generator=gen)
    b = torch.randint(0, 256, (k, cols), generator=gen)
    want = reference.matmul(a, b, table)
    for name in GATHER_BACKENDS:
        assert torch.equal(lut_matmul(a, b, table, backend=name), want), name


def test_lowrank_splits_long_reductions_to_stay_exact():
    """An unsigned exact table over K = 3000 needs several float32 calls; still bit-exact."""
    table = exact(8, 8)
    gen = torch.Generator().manual_seed(2)
    a = torch.full((4, 3000), 255)
    a[1] = torch.randint(0, 256, (3000,), generator=gen)
    b = torch.randint(0, 256, (3000, 6), generator=gen)
    b[:, 0] = 255
    plan = lowrank.plan_for(table, 3000, 1)
    assert plan is not None and len(plan.chunks) > 1
    assert torch.equal(lut_matmul(a, b, table, backend="lowrank"), reference.matmul(a, b, table))


@pytest.mark.skipif(not EVO, reason="shared/data/evoapprox8u not present")
@pytest.mark.parametrize("name", sorted(EVO))
def test_every_evoapprox_table_is_exact_on_every_backend(name):
    table = EVO[name]
    geom = ConvGeometry.of(3, stride=1, padding=1, groups=2)
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (2, 8, 5, 5), generator=gen)
    x[0, :, 0] = 255
    w = torch.randint(0, 256, (4, 4, 3, 3), generator=gen)
    w[0] = 255
    want = reference.conv2d(x, w, table, geom, 0)
    for backend in _backends_for(table):
        assert torch.equal(lut_conv2d(x, w, table, geom, 0, backend=backend), want), backend


@pytest.mark.parametrize(
    "table,max_atoms",
    [
        (exact(8, 8), 1),
        (exact(8, 8, True), 1),
        (drum(4), 1),
        (operand_truncation(2), 1),
        (column_truncation(8), 8),
        (column_truncation(4), 8),
        (exact(3, 5, True), 1),
    ],
)
def test_structured_tables_get_small_exact_decompositions(table, max_atoms):
    variants = factorize(table)
    assert variants
    for f in variants:
        assert np.array_equal(f.reconstruct(), f.denominator * table.numpy().astype(np.int64))
        assert all(np.abs(a.u).max() <= 255 and np.abs(a.v).max() <= 255 for a in f.atoms)
    assert min(f.atom_count for f in variants) <= max_atoms


def test_high_rank_tables_have_no_decomposition_and_lowrank_refuses_them():
    table = random_table(8, 8, 11)
    assert factorize(table) == ()
    x = torch.randint(0, 256, (1, 2, 4, 4))
    w = torch.randint(0, 256, (2, 2, 3, 3))
    with pytest.raises(ConfigError, match="lowrank"):
        lut_conv2d(x, w, table, ConvGeometry.of(3), backend="lowrank")


def test_dispatcher_prefers_lowrank_for_low_rank_and_a_gather_for_full_rank_tables():
    """A layer on a rank-1 table, wide and late: one float32 conv beats any gather; full-rank
    tables go to the fastest gather backend available."""
    cpu = torch.device("cpu")
    geom = ConvGeometry.of(3, padding=1)
    from axdnn.kernels.dispatch import conv_problem

    p = conv_problem((128, 64, 8, 8), (64, 64, 3, 3), geom, cpu, fused=True)
    assert choose_backend(exact(8, 8), cpu, problem=p).name == "lowrank"
    gather = choose_backend(random_table(8, 8, 5), cpu, problem=p).name
    fastest = "native" if native.available() else "numba" if gather_cpu.available() else "torch"
    assert gather == fastest
    x = torch.randint(0, 256, (1, 16, 16, 16))
    w = torch.randint(0, 256, (16, 16, 3, 3))
    assert torch.equal(lut_conv2d(x, w, mitchell(), geom), reference.conv2d(x, w, mitchell(), geom))


def test_unknown_backend_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError) as info:
        lut_linear(
            torch.zeros(2, 3, dtype=torch.long),
            torch.zeros(4, 3, dtype=torch.long),
            exact(4, 4),
            backend="fastest",
        )
    for name in list_backends():
        assert name in str(info.value)


def test_out_of_range_indices_are_rejected_before_any_kernel_runs():
    table = exact(4, 4)
    with pytest.raises(ShapeError, match="0..15"):
        lut_matmul(torch.full((2, 3), 16), torch.zeros(3, 2, dtype=torch.long), table)
    with pytest.raises(ShapeError, match="pad_index"):
        lut_conv2d(
            torch.zeros(1, 1, 3, 3, dtype=torch.long),
            torch.zeros(1, 1, 3, 3, dtype=torch.long),
            table,
            ConvGeometry.of(3),
            pad_index=99,
        )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@settings(max_examples=15, deadline=None)
@given(conv_case())
def test_cuda_backends_match_cpu_reference(case):
    x, w, table, geom, pad_index = case
    want = reference.conv2d(x, w, table, geom, pad_index)
    xc, wc = x.cuda(), w.cuda()
    for name in ["torch", "auto"] + (["lowrank"] if factorize(table) else []):
        got = lut_conv2d(xc, wc, table.cuda(), geom, pad_index=pad_index, backend=name)
        assert got.is_cuda and torch.equal(got.cpu(), want), name


def test_cached_table_digest_and_plans_follow_in_place_table_changes():
    """Per-object digest and plan caches must not serve a table that changed in place."""
    from axdnn.kernels.factor import table_digest

    table = exact(4, 4).clone()
    before = table_digest(table)
    assert table_digest(table) == before
    table[3, 3] += 5  # rank 1 -> rank 2
    assert table_digest(table) != before
    gen = torch.Generator().manual_seed(4)
    x = torch.randint(0, 16, (2, 3, 5, 5), generator=gen)
    w = torch.randint(0, 16, (2, 3, 3, 3), generator=gen)
    geom = ConvGeometry.of(3, padding=1)
    want = reference.conv2d(x, w, table, geom)
    for name in _backends_for(table):
        assert torch.equal(lut_conv2d(x, w, table, geom, backend=name), want), name


def test_uint8_indices_skip_the_range_check_but_stay_exact():
    table = mitchell()
    gen = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (2, 4, 6, 6), generator=gen)
    w = torch.randint(0, 256, (3, 4, 3, 3), generator=gen)
    geom = ConvGeometry.of(3, stride=2, padding=1)
    got = lut_conv2d(x.to(torch.uint8), w.to(torch.uint8), table, geom)
    assert torch.equal(got, reference.conv2d(x, w, table, geom))


@pytest.mark.skipif(not gather_cpu.available(), reason="needs numba")
@pytest.mark.parametrize("fuse_bytes", [0, 1 << 30])
@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_numba_3x3_paths_nine_tap_and_row_fused_are_exact(
    monkeypatch, fuse_bytes, stride, dilation
):
    """3x3 kernels run with all nine taps fused or three per kernel row; both are exact."""
    monkeypatch.setattr(gather_cpu, "FUSE9_BYTES", fuse_bytes)
    table = random_table(8, 8, 9, lo=0, hi=1 << 16)
    gen = torch.Generator().manual_seed(6)
    x = torch.randint(0, 256, (2, 4, 9, 8), generator=gen)
    w = torch.randint(0, 256, (6, 2, 3, 3), generator=gen)
    geom = ConvGeometry.of(3, stride=stride, padding=1, dilation=dilation, groups=2)
    want = reference.conv2d(x, w, table, geom, 7)
    assert torch.equal(lut_conv2d(x, w, table, geom, pad_index=7, backend="numba"), want)
