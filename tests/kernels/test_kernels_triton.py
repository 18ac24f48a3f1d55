"""The Triton backend is bit-identical to kernels.reference (raw sums, zero-point MAC, the fused
float chain, gradients through it). Without a GPU the kernels run in Triton's interpreter on CPU
tensors (TRITON_INTERPRET=1, set here before triton is imported, as Triton requires: its own
library functions are built for one mode at import); sizes stay small: the interpreter is slow."""

from __future__ import annotations

import os
import sys

import kernels_cases as cases
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from kernels_tables import column_truncation, drum, exact, mitchell, random_low_rank, random_table

if not torch.cuda.is_available():
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip(
            "triton was imported before TRITON_INTERPRET=1 could be set; run this file on its "
            "own: TRITON_INTERPRET=1 pytest tests/kernels/test_kernels_triton.py",
            allow_module_level=True,
        )
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip("triton", reason="the triton backend needs triton (pip install 'axdnn[gpu]')")

from axdnn.kernels import (  # noqa: E402
    ActQuant,
    ConvGeometry,
    ZeroPoints,
    affine,
    choose_backend,
    lut_conv2d,
    lut_conv2d_float,
    lut_linear,
    lut_linear_float,
    lut_matmul,
    reference,
)
from axdnn.kernels import triton_kernels as tk  # noqa: E402
from axdnn.kernels.dispatch import conv_problem  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dev(*tensors):
    return [t.to(DEVICE) for t in tensors]


TABLES = st.sampled_from(
    [
        random_table(8, 8, 1),  # full rank
        random_table(8, 8, 2, lo=-(1 << 30), hi=1 << 30),  # sums overflow int32: int64 path
        random_table(4, 6, 3),  # rectangular, small
        exact(8, 8, True),
        drum(4),
        column_truncation(8),
        mitchell(),
        random_low_rank(5, 5, 2, 4),
    ]
)


def conv_case():
    return cases.conv_case(TABLES)


def _zero(table, out_channels: int, seed: int, signed: bool) -> ZeroPoints:
    gen = torch.Generator().manual_seed(seed)
    zx = int(torch.randint(-3, 4, (1,), generator=gen)) if signed else 3
    zw = torch.randint(-2, 3, (out_channels,), generator=gen)
    return ZeroPoints(zx, zw, a_signed=signed, b_signed=signed)


@settings(max_examples=25, deadline=None)
@given(conv_case(), st.booleans())
def test_conv_raw_and_zero_point_sums_match_reference(case, signed):
    x, w, table, geom, pad = case
    want = reference.conv2d(x, w, table, geom, pad)
    got = lut_conv2d(*_dev(x, w, table), geom, pad_index=pad, backend="triton")
    assert got.dtype == torch.int64 and torch.equal(got.cpu(), want)
    zero = _zero(table, w.shape[0], pad, signed)
    want_z = lut_conv2d(x, w, table, geom, backend="reference", zero=zero)
    got_z = lut_conv2d(*_dev(x, w, table), geom, backend="triton", zero=zero)
    assert torch.equal(got_z.cpu(), want_z)


@pytest.mark.parametrize("uint8", [False, True])
def test_uint8_indices_and_uint8_weights(uint8):
    table = random_table(8, 8, 5)
    gen = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (2, 4, 6, 6), generator=gen)
    w = torch.randint(0, 256, (5, 4, 3, 3), generator=gen)
    geom = ConvGeometry.of(3, stride=2, padding=1)
    xs, ws = (x.to(torch.uint8), w.to(torch.uint8)) if uint8 else (x, w)
    got = lut_conv2d(*_dev(xs, ws, table), geom, backend="triton")
    assert torch.equal(got.cpu(), reference.conv2d(x, w, table, geom))


@settings(max_examples=20, deadline=None)
@given(
    TABLES,
    st.integers(1, 6),
    st.integers(1, 40),
    st.integers(1, 6),
    st.sampled_from([((), ()), ((2,), ()), ((3, 1), (2,)), ((1,), (4, 1))]),
    st.integers(0, 10**6),
)
def test_matmul_and_linear_match_reference(table, m, k, n, batches, seed):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randint(0, table.shape[0], (*batches[0], m, k), generator=gen)
    b = torch.randint(0, table.shape[1], (*batches[1], k, n), generator=gen)
    want = reference.matmul(a, b, table)
    assert torch.equal(lut_matmul(*_dev(a, b, table), backend="triton").cpu(), want)
    if not batches[0] and not batches[1]:
        bt = b.T.contiguous()
        assert torch.equal(lut_linear(*_dev(a, bt, table), backend="triton").cpu(), want)
        zero = _zero(table, n, seed, seed % 2 == 1)
        want_z = lut_linear(a, bt, table, backend="reference", zero=zero)
        got_z = lut_linear(*_dev(a, bt, table), backend="triton", zero=zero)
        assert torch.equal(got_z.cpu(), want_z)


def _act(bits: int, signed: bool, scale: float = 0.05) -> ActQuant:
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    zero = 0 if signed else 7
    return ActQuant(torch.tensor(scale, dtype=torch.float32), zero, lo, hi, bits)


def test_quantize_pass_rounds_half_to_even_like_torch():
    """Exact halves, values just beside them, far out of range, and +-0 (the rounding
    corners where a division or rounding shortcut would differ)."""
    act = _act(8, False, scale=0.25)
    k = torch.arange(-300, 300, dtype=torch.float32)
    halves = (k + 0.5) * 0.25
    x = torch.cat([halves, torch.nextafter(halves, halves + 1), torch.nextafter(halves, halves - 1),
                   torch.tensor([1e9, -1e9, 3e6, -3e6, 0.0, -0.0]), torch.randn(500) * 40])  # fmt: skip
    want = affine.index_of(affine.quantize(x, act.scale, act.zero, act.qmin, act.qmax), 8)
    for a in (act, _act(8, True, scale=0.1), _act(4, True, scale=0.3)):
        want = affine.index_of(affine.quantize(x, a.scale, a.zero, a.qmin, a.qmax), a.bits)
        got = tk.quantize_indices(x.to(DEVICE), a)
        assert got.dtype == torch.uint8 and torch.equal(got.cpu().long(), want)


@settings(max_examples=15, deadline=None)
@given(conv_case(), st.booleans(), st.sampled_from([None, 12, 20]), st.integers(0, 10**6))
def test_fused_float_chain_matches_the_composed_reference(case, signed, acc_bits, seed):
    """quantize -> table MAC -> zero points -> saturate -> dequantize, bit for bit."""
    x_idx, w, table, geom, _ = case
    bits = table.shape[0].bit_length() - 1
    act = _act(bits, signed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(x_idx.shape, generator=gen) * 3
    zero = _zero(table, w.shape[0], seed, signed)
    scale = torch.rand(w.shape[0], generator=gen) * 1e-3
    want = lut_conv2d_float(x, act, w, table, geom, zero, scale, acc_bits, backend="reference")
    got = lut_conv2d_float(*_dev(x), act, *_dev(w, table), geom, zero, scale, acc_bits,
                           backend="triton")  # fmt: skip
    assert got.dtype == torch.float32 and torch.equal(got.cpu(), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_linear_matches_the_composed_reference(dtype):
    table = mitchell()
    gen = torch.Generator().manual_seed(7)
    x = (torch.randn(9, 30, generator=gen) * 4).to(dtype)
    w = torch.randint(0, 256, (11, 30), generator=gen)
    act = _act(8, False)
    zero = ZeroPoints(7, torch.randint(0, 5, (11,), generator=gen))
    scale = torch.rand(11, generator=gen)
    want = lut_linear_float(x, act, w, table, zero, scale, 16, backend="reference")
    got = lut_linear_float(*_dev(x), act, *_dev(w, table), zero, scale, 16, backend="triton")
    assert torch.equal(got.cpu(), want)


def test_auto_never_picks_the_interpreter_for_cpu_tensors():
    geom = ConvGeometry.of(3, padding=1)
    p = conv_problem((2, 8, 8, 8), (8, 8, 3, 3), geom, torch.device("cpu"), fused=True)
    for table in (random_table(8, 8, 1), exact(8, 8)):
        assert choose_backend(table, torch.device("cpu"), problem=p).name != "triton"
        assert choose_backend(table, torch.device("cpu")).name != "triton"


def test_cuda_auto_prefers_triton_for_general_tables():
    """Priced for a CUDA problem (no device needed to price it): a full-rank table goes to the
    Triton kernel, a rank-1 table still to lowrank's float convolutions."""
    cuda = torch.device("cuda")
    geom = ConvGeometry.of(3, padding=1)
    p = conv_problem((128, 64, 8, 8), (64, 64, 3, 3), geom, cuda, fused=True)
    if not tk.supports(random_table(8, 8, 1), cuda):
        pytest.skip("triton supports CUDA tensors only where a CUDA build of triton runs")
    assert choose_backend(random_table(8, 8, 1), cuda, problem=p).name == "triton"
    assert choose_backend(exact(8, 8), cuda, problem=p).name == "lowrank"


def _layer_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1, stride=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, padding=1, groups=2),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 3 * 3, 5),
    )


@pytest.mark.parametrize("gradient", ["ste", "table"])
def test_training_forward_and_gradients_match_the_reference_backend(gradient):
    """The layers' autograd path (raw zero-point MAC forward, torch backward) on triton."""
    from axdnn.nn.approximate import approximate
    from axdnn.nn.plan import Plan

    gen = torch.Generator().manual_seed(8)
    calib = torch.rand(16, 3, 6, 6, generator=gen)
    x = torch.rand(4, 3, 6, 6, generator=gen)
    results = {}
    for backend in ("reference", "triton"):
        plan = Plan.uniform("drum:4", backend=backend, gradient=gradient, gradient_rank=2)
        model = approximate(_layer_model(0), plan, calib).to(DEVICE)
        xi = x.to(DEVICE).requires_grad_(True)
        out = model(xi)
        out.square().sum().backward()
        grads = [p.grad.cpu() for p in model.parameters() if p.grad is not None]
        with torch.no_grad():
            model.eval()
            evaluated = model(x.to(DEVICE)).cpu()
        results[backend] = (out.detach().cpu(), xi.grad.cpu(), grads, evaluated)
    ref, tri = results["reference"], results["triton"]
    assert torch.equal(ref[0], tri[0]) and torch.equal(ref[1], tri[1])
    assert len(ref[2]) == len(tri[2]) > 0
    assert all(torch.equal(a, b) for a, b in zip(ref[2], tri[2], strict=True))
    assert torch.equal(ref[3], tri[3])  # inference: triton's fused chain


def test_exported_program_runs_the_triton_kernel_bit_identically():
    """The custom operator carries the forced backend: export, then run on triton."""
    table = random_table(8, 8, 9)
    gen = torch.Generator().manual_seed(9)
    geom = ConvGeometry.of(3, padding=1, groups=2)
    w, zw = torch.randint(0, 256, (4, 2, 3, 3), generator=gen), torch.randint(0, 3, (4,))
    act, scale = _act(8, False), torch.rand(4, generator=gen)

    class Net(torch.nn.Module):
        def forward(self, x):
            return lut_conv2d_float(x, act, w.to(x.device), table.to(x.device), geom,
                                    ZeroPoints(7, zw), scale, None, "triton")  # fmt: skip

    x = torch.randn(2, 4, 5, 5, generator=gen).to(DEVICE)
    program = torch.export.export(Net(), (x,))
    want = lut_conv2d_float(x.cpu(), act, w, table, geom, ZeroPoints(7, zw), scale, None,
                            "reference")  # fmt: skip
    assert torch.equal(program.module()(x).cpu(), want)


def test_groups_beyond_one_grid_dimension_run_in_several_launches(monkeypatch):
    """A batched matmul of more matrices than a launch's group dimension holds."""
    monkeypatch.setattr(tk, "MAX_GRID_GROUPS", 2)
    table = random_table(4, 4, 6)
    gen = torch.Generator().manual_seed(6)
    a = torch.randint(0, 16, (5, 3, 4), generator=gen)
    b = torch.randint(0, 16, (5, 4, 2), generator=gen)
    got = lut_matmul(*_dev(a, b, table), backend="triton")
    assert torch.equal(got.cpu(), reference.matmul(a, b, table))
