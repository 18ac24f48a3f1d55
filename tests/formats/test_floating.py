"""Float formats: bit-exact agreement with torch's dtypes, and an enumerate-every-value reference
for arbitrary widths, biases, subnormal handling, rounding, overflow and truncation."""

import math

import pytest
import torch
from formats_reference import float_grid, ref_float
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.formats import FloatFormat, Identity, parse_format

TORCH_DTYPES = {
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "fp8_e4m3": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}


def _torch_e4m3_saturates() -> bool:
    """Recent torch saturates float->float8_e4m3fn overflow (and inf) to +-448; older gave NaN."""
    return torch.tensor([1e4, float("inf")]).to(torch.float8_e4m3fn).float().tolist() == [448.0] * 2


def _format_for(name: str) -> FloatFormat:
    if name == "fp8_e4m3" and not _torch_e4m3_saturates():
        return parse_format("fp8_e4m3,overflow=nan")  # type: ignore[return-value]
    return parse_format(name)  # type: ignore[return-value]


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int32)


def _assert_bit_exact(fmt: FloatFormat, x: torch.Tensor, dtype: torch.dtype) -> None:
    got = fmt.quantize(x)
    want = x.to(dtype).float()
    nan = torch.isnan(want)
    assert torch.equal(torch.isnan(got), nan)
    bad = (_bits(got) != _bits(want)) & ~nan
    idx = bad.nonzero().flatten()[:5].tolist()
    assert not idx, [(x[i].item(), got[i].item(), want[i].item()) for i in idx]


def _all_codes(dtype: torch.dtype) -> torch.Tensor:
    """Every value of a 8- or 16-bit torch float dtype, as float32."""
    nbits = torch.finfo(dtype).bits
    raw = torch.arange(2**nbits, dtype=torch.int32)
    storage = raw.to(torch.uint8) if nbits == 8 else raw.to(torch.int16)
    return storage.view(dtype).float()


@pytest.mark.parametrize("name", list(TORCH_DTYPES))
def test_torch_agreement_on_every_tie_and_neighbour(name: str) -> None:
    dtype = TORCH_DTYPES[name]
    fmt = _format_for(name)
    vals = _all_codes(dtype)
    pos = torch.unique(vals[torch.isfinite(vals) & (vals >= 0)]).double()
    nxt = torch.cat([pos[1:], torch.tensor([2.0 * pos[-1] - pos[-2]], dtype=torch.float64)])
    mids = ((pos + nxt) / 2).float()  # every tie, including the overflow boundary
    pts = torch.cat([pos.float(), mids])
    up = torch.nextafter(pts, torch.tensor(float("inf")))
    down = torch.nextafter(pts, torch.tensor(0.0))
    specials = torch.tensor([float("inf"), float("nan"), 3.0e38, torch.finfo(torch.float32).max])
    x = torch.cat([pts, up, down, specials])
    x = torch.cat([x, -x])
    _assert_bit_exact(fmt, x, dtype)


@pytest.mark.parametrize("name", list(TORCH_DTYPES))
def test_torch_agreement_on_random_bit_patterns(name: str) -> None:
    gen = torch.Generator().manual_seed(1234)
    raw = torch.randint(-(2**31), 2**31, (200_000,), generator=gen, dtype=torch.int64)
    x = raw.to(torch.int32).view(torch.float32)
    # also concentrate patterns on the format's own range (all float32 exponents 100..160)
    near = (raw % (2**23)) | (((raw // 2**23) % 60 + 100) << 23) | ((raw < 0).long() << 31)
    x = torch.cat([x, near.to(torch.int32).view(torch.float32)])
    _assert_bit_exact(_format_for(name), x, TORCH_DTYPES[name])


@settings(max_examples=50, deadline=None)
@given(
    name=st.sampled_from(list(TORCH_DTYPES)),
    patterns=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=64),
)
def test_torch_agreement_hypothesis(name: str, patterns: list[int]) -> None:
    raw = torch.tensor(patterns, dtype=torch.int64)
    x = torch.where(raw >= 2**31, raw - 2**32, raw).to(torch.int32).view(torch.float32)
    _assert_bit_exact(_format_for(name), x, TORCH_DTYPES[name])


def test_e4m3_and_e5m2_limits() -> None:
    e4 = parse_format("fp8_e4m3")
    assert e4.max_value == 448.0 and e4.min_positive == 2.0**-9 and e4.min_normal == 2.0**-6
    x = torch.tensor([464.0, 465.0, 1e4, float("inf"), float("nan")])
    assert e4.quantize(x)[:4].tolist() == [448.0] * 4 and math.isnan(e4.quantize(x)[4])
    nan_mode = parse_format("fp8_e4m3,overflow=nan").quantize(x)
    assert nan_mode[0].item() == 448.0 and bool(torch.isnan(nan_mode[1:]).all())
    e5 = parse_format("fp8_e5m2")
    assert e5.max_value == 57344.0
    assert e5.quantize(torch.tensor([61439.0, 61440.0, -1e6])).tolist() == [
        57344.0,
        float("inf"),
        float("-inf"),
    ]
    assert parse_format("bf16").max_value == float(torch.finfo(torch.bfloat16).max)
    assert parse_format("fp16").min_positive == 2.0**-24


# ---- arbitrary formats against the enumeration reference -----------------------------------

MODES = ["nearest_even", "nearest_away", "floor", "toward_zero"]


@st.composite
def float_formats(draw) -> FloatFormat:
    e = draw(st.integers(2, 5))
    m = draw(st.integers(0, 4))
    fn = draw(st.booleans())
    return FloatFormat(
        e,
        m,
        bias=2 ** (e - 1) - 1 + draw(st.integers(-2, 2)),
        fn=fn,
        subnormals=draw(st.booleans()),
        rounding=draw(st.sampled_from(MODES)),
        overflow=draw(st.sampled_from(["saturate", "nan"] if fn else ["saturate", "nan", "inf"])),
        trunc=draw(st.integers(0, m)),
    )


@st.composite
def format_and_values(draw) -> tuple[FloatFormat, list[float]]:
    fmt = draw(float_formats())
    scale = fmt.max_value
    rel = st.floats(-2.5, 2.5, allow_subnormal=False)
    xs = [r * scale for r in draw(st.lists(rel, min_size=1, max_size=25))]
    tiny = st.floats(-4.0, 4.0).map(lambda r: r * fmt.min_normal)
    xs += draw(st.lists(tiny, max_size=8))
    grid = sorted(float_grid(fmt.exp_bits, fmt.man_bits, fmt.bias, fmt.fn, fmt.subnormals))
    picks = draw(st.lists(st.integers(0, len(grid) - 2), max_size=8))
    xs += [(grid[i] + grid[i + 1]) / 2 for i in picks]  # exact ties
    xs += draw(st.lists(st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan]), max_size=3))
    return fmt, [float(torch.tensor(v, dtype=torch.float32)) for v in xs]


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@settings(max_examples=50, deadline=None)
@given(case=format_and_values())
def test_matches_enumeration_reference(case) -> None:
    fmt, xs = case
    got = fmt.quantize(torch.tensor(xs, dtype=torch.float32)).tolist()
    for xi, gi in zip(xs, got, strict=True):
        ref = ref_float(
            xi,
            fmt.exp_bits,
            fmt.man_bits,
            fmt.bias,
            fmt.fn,
            fmt.subnormals,
            fmt.rounding,
            fmt.overflow,
            fmt.trunc,
        )
        assert _same(gi, ref), (fmt.spec, xi, gi, ref)


@settings(max_examples=50, deadline=None)
@given(case=format_and_values())
def test_idempotent_monotonic_on_grid(case) -> None:
    fmt, xs = case
    x = torch.tensor(xs, dtype=torch.float32)
    q = fmt.quantize(x)
    q2 = fmt.quantize(q)
    assert all(_same(a, b) for a, b in zip(q.tolist(), q2.tolist(), strict=True))
    grid = float_grid(fmt.exp_bits, fmt.man_bits, fmt.bias, fmt.fn, fmt.subnormals)
    for v in q.tolist():
        assert math.isnan(v) or math.isinf(v) or v in grid
        assert math.isnan(v) or math.isinf(v) or abs(v) <= fmt.max_value
    s = torch.sort(x[~torch.isnan(x)]).values
    qs = fmt.quantize(s)
    qs = qs[~torch.isnan(qs)]  # overflow=nan may drop values; the rest must stay ordered
    if fmt.overflow != "nan":
        assert bool((qs[1:] >= qs[:-1]).all())


@pytest.mark.parametrize(
    "spec",
    [
        "float:e8m3,bias=135",  # subnormals below float32's normal range: float64 path
        "float:e8m2,bias=100,round=floor",
        "float:e8m7,bias=127,subnormals=off",  # whole float32 exponent range
        "float:e6m5fn,round=nearest_away,trunc=2",
        "float:e7m4,round=toward_zero,overflow=saturate",
    ],
)
def test_wide_exponent_formats_match_reference(spec: str) -> None:
    fmt = parse_format(spec)
    gen = torch.Generator().manual_seed(5)
    lo = math.log2(fmt.min_positive) - 2
    hi = math.log2(fmt.max_value) + 1
    mags = torch.exp2(torch.rand(1500, generator=gen, dtype=torch.float64) * (hi - lo) + lo)
    x = (mags * torch.sign(torch.randn(1500, generator=gen, dtype=torch.float64))).float()
    for dtype in (torch.float32, torch.float64):
        got = fmt.quantize(x.to(dtype)).tolist()
        for xi, gi in zip(x.tolist(), got, strict=True):
            args = (fmt.exp_bits, fmt.man_bits, fmt.bias, fmt.fn, fmt.subnormals)
            ref = ref_float(xi, *args, fmt.rounding, fmt.overflow, fmt.trunc)
            assert _same(gi, ref), (spec, dtype, xi, gi, ref)


def test_truncation_zeroes_mantissa_lsbs() -> None:
    fmt = parse_format("float:e8m23,trunc=13")
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 100
    q = fmt.quantize(x)
    bits = _bits(q)
    assert bool((bits & (2**13 - 1) == 0).all())
    # truncation after exact float32 rounding = masking the stored bits
    assert torch.equal(bits, _bits(x) & ~(2**13 - 1))
    assert fmt.bits == 19


def test_subnormals_off_flushes_to_zero() -> None:
    fmt = parse_format("fp16,subnormals=off")
    tiny = torch.tensor([2.0**-15, -(2.0**-20), 2.0**-14, 2.0**-14 * 1.0004])
    q = fmt.quantize(tiny)
    assert q.tolist() == [0.0, -0.0, 2.0**-14, 2.0**-14]
    assert math.copysign(1.0, q[1].item()) < 0


def test_overflow_directed_rounding_follows_ieee() -> None:
    big = torch.tensor([1e6, -1e6])
    assert parse_format("fp16,round=rtz").quantize(big).tolist() == [65504.0, -65504.0]
    assert parse_format("fp16,round=floor").quantize(big).tolist() == [65504.0, float("-inf")]
    assert parse_format("fp16,overflow=saturate").quantize(big).tolist() == [65504.0, -65504.0]


def test_ste_gradient_clipped_to_finite_range() -> None:
    x = torch.tensor([1.0, -3.7, 65504.0, 7e4, float("inf")], requires_grad=True)
    parse_format("fp16").quantize(x).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    y = torch.tensor([1.0, 1e30], requires_grad=True)
    out = Identity().quantize(y)
    out.sum().backward()
    assert out is y and y.grad.tolist() == [1.0, 1.0]


def test_float64_and_half_inputs() -> None:
    x64 = torch.tensor([1.0 + 2.0**-30, 3.14159265358979, 1e-300], dtype=torch.float64)
    q = parse_format("bf16").quantize(x64)
    assert q.dtype == torch.float64
    assert torch.equal(q, x64.to(torch.bfloat16).double())
    x16 = torch.tensor([1.0, 0.3, 1000.0], dtype=torch.float16)
    assert torch.equal(parse_format("fp8_e5m2").quantize(x16), x16.to(torch.float8_e5m2).half())


def test_stochastic_rounding_unbiased_and_seeded() -> None:
    fmt = parse_format("float:e5m2,round=stochastic,seed=3")
    x = torch.tensor([1.1, -0.3, 3000.0, 2.0**-15 * 0.3])
    n = 20000
    xs = x.repeat(n, 1)
    q = fmt.quantize(xs, generator=torch.Generator().manual_seed(0)).double()
    lo = torch.tensor([1.0, -0.3125, 2048.0 + 512 * 1.0, 0.0], dtype=torch.float64)
    hi = torch.tensor([1.25, -0.25, 3072.0, 2.0**-16], dtype=torch.float64)
    assert bool(((q == lo) | (q == hi)).all())
    p = (x.double() - lo) / (hi - lo)
    sigma = (p * (1 - p)).sqrt() * (hi - lo).abs() / n**0.5
    assert bool(((q.mean(0) - x.double()).abs() <= 5 * sigma).all())
    a = fmt.quantize(xs[:64], generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, fmt.quantize(xs[:64], generator=torch.Generator().manual_seed(9)))
    assert torch.equal(fmt.quantize(xs[:64]), fmt.quantize(xs[:64]))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    raw = torch.randint(-(2**31), 2**31, (100_000,), generator=torch.Generator().manual_seed(0))
    x = raw.to(torch.int32).view(torch.float32)
    for spec in ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "float:e3m2,trunc=1", "fxp:8.8"]:
        fmt = parse_format(spec)
        a, b = fmt.quantize(x), fmt.quantize(x.cuda()).cpu()
        assert torch.equal(torch.isnan(a), torch.isnan(b))
        assert torch.equal(a[~torch.isnan(a)], b[~torch.isnan(b)])
