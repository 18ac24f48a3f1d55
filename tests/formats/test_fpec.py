"""FPEC encoding against an exact per-element reference of the documented encoding, the
compensated MACs against explicit sums, and FPEC-Opt on toy score functions."""

import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.errors import FormatError
from axdnn.formats import (
    FixedPoint,
    Format,
    Fpec,
    compensated_conv2d,
    compensated_linear,
    compensated_matmul,
    compensation_term,
    fpec_opt,
    parse_format,
)

fpec_formats = st.builds(
    Fpec,
    int_bits=st.integers(1, 6),
    frac_bits=st.integers(0, 6),
    mag_bits=st.integers(0, 2),
    skip=st.none() | st.sampled_from([0.0, 0.05, 0.125, 0.3, 0.45]),
    signed=st.booleans(),
)
values = st.lists(st.floats(-80, 80, width=32), min_size=1, max_size=30)


def ref_encode(x: float, fmt: Fpec) -> tuple[Fraction, Fraction]:
    """(value, estimate) per the module docstring, in exact rationals."""
    step = Fraction(1, 2**fmt.frac_bits)
    lo, hi = fmt.fixed.code_min, fmt.fixed.code_max
    code = min(max(round(Fraction(x) / step), lo), hi)
    r = Fraction(x) / step - code
    t = Fraction(fmt.threshold)
    w = (Fraction(1, 2) - t) / 2**fmt.mag_bits
    if abs(r) <= t:
        return code * step, Fraction(0)
    i = min(max(math.floor((abs(r) - t) / w), 0), 2**fmt.mag_bits - 1)
    e = (t + (i + Fraction(1, 2)) * w) * step
    return code * step, e if r > 0 else -e


@settings(max_examples=50, deadline=None)
@given(fmt=fpec_formats, xs=values)
def test_encode_matches_reference(fmt: Fpec, xs: list[float]) -> None:
    x = torch.tensor(xs, dtype=torch.float64)
    enc = fmt.encode(x)
    for xi, v, c in zip(xs, enc.value.tolist(), enc.comp.tolist(), strict=True):
        rv, rc = ref_encode(xi, fmt)
        assert v == float(rv)
        assert c == pytest.approx(float(rc), rel=1e-12, abs=1e-15)
    fields = fmt.encode_fields(x)
    assert torch.equal(fields.codes, fmt.fixed.to_codes(x))
    assert bool((fields.magnitude >= 0).all() and (fields.magnitude < 2**fmt.mag_bits).all())
    assert torch.equal(fields.zero, enc.comp == 0)
    again = fmt.decode_fields(fields, torch.float64)
    assert torch.equal(again.value, enc.value) and torch.equal(again.comp, enc.comp)


@settings(max_examples=50, deadline=None)
@given(fmt=fpec_formats, xs=values)
def test_quantize_idempotent_monotonic_bounded(fmt: Fpec, xs: list[float]) -> None:
    x = torch.sort(torch.tensor(xs, dtype=torch.float64)).values
    q = fmt.quantize(x)
    assert bool((q[1:] >= q[:-1]).all())
    assert torch.equal(fmt.quantize(q), q)
    enc = fmt.encode(x)
    assert torch.allclose(q, enc.effective, rtol=0, atol=1e-12)
    # inside the range the error is at most max(t, w/2) steps
    fx = fmt.fixed
    inside = (x >= fx.min_value) & (x <= fx.max_value)
    bound = max(fmt.threshold, fmt.bin_width / 2) * fx.step + 1e-12
    assert bool(((q - x).abs()[inside] <= bound).all())
    if fmt.threshold >= fmt.bin_width / 2:  # then compensation never increases the error
        assert bool(((q - x).abs()[inside] <= (enc.value - x).abs()[inside] + 1e-12).all())


def test_default_levels_are_nearest_grid() -> None:
    assert Fpec(8, 4, 0).levels == pytest.approx([1 / 3])
    assert Fpec(8, 4, 1).levels == pytest.approx([1 / 5, 2 / 5])
    assert Fpec(8, 4, 2).levels == pytest.approx([1 / 9, 2 / 9, 3 / 9, 4 / 9])
    assert Fpec(8, 4, 2).bits == 12 + 4 and Fpec(8, 4).comp_bits == 2
    # with the default threshold, the estimate is the error rounded to the nearest level or 0
    fmt = Fpec(4, 2, 1)
    r = torch.arange(-49.5, 50.0, 1.0, dtype=torch.float64) / 100  # no exact ties
    x = 1.0 + r * fmt.fixed.step
    est = fmt.encode(x).comp / fmt.fixed.step
    cands = torch.tensor([-0.4, -0.2, 0.0, 0.2, 0.4], dtype=torch.float64)
    nearest = cands[(r[:, None] - cands[None, :]).abs().argmin(1)]
    assert torch.allclose(est, nearest)


def test_encoding_fields_examples() -> None:
    fmt = parse_format("fpec:4.2,c=1")  # step 0.25, t = 0.1, bins [0.1,0.3), [0.3,0.5]
    fields = fmt.encode_fields(torch.tensor([1.0, 1.03, 1.1, -1.1, 0.8, 100.0]))
    assert fields.codes.tolist() == [4, 4, 4, -4, 3, 31]
    assert fields.zero.tolist() == [True, False, False, False, False, False]
    assert fields.negative.tolist() == [False, False, False, True, False, False]
    assert fields.magnitude.tolist() == [0, 0, 1, 1, 0, 1]
    with pytest.raises(FormatError, match="NaN"):
        fmt.encode_fields(torch.tensor([float("nan")]))
    assert math.isnan(fmt.quantize(torch.tensor([float("nan")])).item())


def test_ste_gradient_clipped_to_fixed_range() -> None:
    x = torch.tensor([-9.0, -1.3, 0.2, 7.75, 8.5], requires_grad=True)
    parse_format("fpec:4.2,c=2").quantize(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def _encoded(shape, fmt, seed):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x, fmt.encode(x), fmt.encode_fields(x)


def test_compensated_matmul_matches_explicit_sum() -> None:
    fmt = parse_format("fpec:4.3,c=2")
    x, ex, fx = _encoded((3, 7), fmt, 0)
    w, ew, fw = _encoded((7, 5), fmt, 1)
    got = compensated_matmul(ex.value, ex.comp, ew.value, ew.comp)
    want = torch.zeros(3, 5, dtype=torch.float64)
    for i in range(3):
        for j in range(5):
            acc = 0.0
            for k in range(7):
                xq, wq = ex.value[i, k].item(), ew.value[k, j].item()
                acc += xq * wq
                if not fw.zero[k, j]:
                    acc += xq * ew.comp[k, j].item()
                if not fx.zero[i, k]:
                    acc += wq * ex.comp[i, k].item()
            want[i, j] = acc
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    lin = compensated_linear(ex.value, ex.comp, ew.value.T, ew.comp.T)
    assert torch.allclose(lin, got, rtol=0, atol=1e-12)
    term = compensation_term(ex.value, ex.comp, ew.value, ew.comp)
    assert torch.allclose(got - ex.value @ ew.value, term, rtol=0, atol=1e-12)


def test_compensated_conv2d_matches_unfolded_sum() -> None:
    fmt = parse_format("fpec:4.3,c=1")
    x, ex, _ = _encoded((2, 4, 6, 6), fmt, 2)
    w, ew, _ = _encoded((6, 2, 3, 3), fmt, 3)  # groups = 2
    bias = torch.randn(6, dtype=torch.float64)
    got = compensated_conv2d(ex.value, ex.comp, ew.value, ew.comp, bias, 2, 1, 1, 2)
    want = torch.empty_like(got)
    for g in range(2):
        xs = slice(2 * g, 2 * g + 2)
        ws = slice(3 * g, 3 * g + 3)
        cols_q = F.unfold(ex.value[:, xs], 3, padding=1, stride=2)  # (N, 2*9, L)
        cols_e = F.unfold(ex.comp[:, xs], 3, padding=1, stride=2)
        wq = ew.value[ws].reshape(3, -1)
        we = ew.comp[ws].reshape(3, -1)
        out = wq @ cols_q + we @ cols_q + wq @ cols_e
        want[:, ws] = out.reshape(2, 3, 3, 3) + bias[ws, None, None]
    assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_compensation_reduces_dot_product_error() -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(64, 512, generator=gen, dtype=torch.float64)
    w = torch.rand(512, 32, generator=gen, dtype=torch.float64) - 0.5
    exact = x @ w
    errs = []
    for c in range(3):
        fmt = Fpec(2, 3, c)
        ex, ew = fmt.encode(x), fmt.encode(w)
        plain = (ex.value @ ew.value - exact).abs().mean().item()
        comp = (compensated_matmul(ex.value, ex.comp, ew.value, ew.comp) - exact).abs().mean()
        errs.append(comp.item())
        assert comp.item() < 0.6 * plain
    assert errs[2] < errs[1] < errs[0]


# ---- FPEC-Opt -----------------------------------------------------------------------------------


def _toy_evaluate(sensitivity: dict[str, float], calls: list[dict[str, Format]]):
    """Score = 100 - sum_l sensitivity_l * RMS quantization error of a fixed tensor (lower error,
    higher score); records every call."""
    data = torch.randn(4096, generator=torch.Generator().manual_seed(11), dtype=torch.float64)

    def evaluate(formats: dict[str, Format]) -> float:
        calls.append(dict(formats))
        loss = 0.0
        for name, fmt in formats.items():
            q = fmt.quantize(data)
            loss += sensitivity[name] * (q - data).pow(2).mean().sqrt().item()
        return 100.0 - loss

    return evaluate


def test_fpec_opt_respects_budget_and_sensitivity() -> None:
    sens = {"conv1": 50.0, "conv2": 1.0, "fc": 5.0}
    calls: list[dict[str, Format]] = []
    evaluate = _toy_evaluate(sens, calls)
    start = parse_format("fpec:4.8")
    result = fpec_opt(evaluate, list(sens), budget=0.5, start=start)
    floor = result.reference - 0.5
    assert result.trace[0].action == "reference" and result.trace[0].score == result.reference
    assert len(result.trace) == len(calls) == result.evaluations
    assert all(s.score >= floor for s in result.trace if s.accepted)
    assert all(s.score < floor for s in result.trace if not s.accepted)
    assert result.final_score >= floor
    assert result.final_score == pytest.approx(evaluate(result.formats))
    f = result.formats
    assert sum(x.bits for x in f.values()) < 3 * start.bits
    assert all(x.frac_bits < start.frac_bits for x in f.values())
    actions = {s.action for s in result.trace if s.accepted}
    assert {"shrink_frac", "add_magnitude"} <= actions
    record = result.to_dict()
    assert record["formats"]["conv2"] == f["conv2"].spec
    assert {parse_format(v) for v in record["formats"].values()} == set(f.values())


def test_fpec_opt_gives_insensitive_layers_fewer_bits() -> None:
    chosen = {}
    for sens in (50.0, 1.0):
        evaluate = _toy_evaluate({"layer": sens}, [])
        chosen[sens] = fpec_opt(evaluate, ["layer"], 0.5, Fpec(4, 8)).formats["layer"]
    assert chosen[1.0].frac_bits < chosen[50.0].frac_bits


def test_fpec_opt_zero_budget_keeps_start_when_every_change_hurts() -> None:
    calls: list[dict[str, Format]] = []
    evaluate = _toy_evaluate({"a": 1.0, "b": 1.0}, calls)

    def strict(formats: dict[str, Format]) -> float:
        # any departure from the start costs score
        return evaluate(formats) - sum(f != start for f in formats.values())

    start = Fpec(4, 4)
    result = fpec_opt(strict, ["a", "b"], budget=0.0, start=start)
    assert result.formats == {"a": start, "b": start}
    assert not any(s.accepted for s in result.trace[1:])


def test_fpec_opt_raises_skip_when_free() -> None:
    # a score that ignores error entirely accepts everything: frac bits go to 0, skip to the top
    result = fpec_opt(lambda formats: 1.0, ["only"], budget=0.0, start=FixedPoint(3, 2))
    f = result.formats["only"]
    assert f.frac_bits == 0 and f.mag_bits == 0 and f.threshold == pytest.approx(0.4375)


def test_fpec_opt_bad_arguments() -> None:
    with pytest.raises(FormatError, match="start format"):
        fpec_opt(lambda f: 0.0, ["a"], 0.1, parse_format("fp16"))
    with pytest.raises(FormatError, match="layers"):
        fpec_opt(lambda f: 0.0, [], 0.1, Fpec(4, 4))
    with pytest.raises(FormatError, match="budget"):
        fpec_opt(lambda f: 0.0, ["a"], -1.0, Fpec(4, 4))
