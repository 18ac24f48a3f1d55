"""Built-in behavioural models against slow scalar references, plus the textbook oracles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from arith_reference import model_ref, signed_value
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.arith import MODELS, build_model, get_multiplier
from axdnn.arith.multiplier import Operands
from axdnn.errors import MultiplierError


# (model, params) per operand width pair; covers every model and edge parameters.
def _cases(na: int, nb: int) -> list[tuple[str, tuple[int, ...]]]:
    n = min(na, nb)
    return [
        ("exact", ()),
        ("trunc", (0,)),
        ("trunc", (n,)),
        ("trunc", (na + nb - 1,)),
        ("bam", (1, n)),
        ("bam", (nb, 0)),
        ("otrunc", (1,)),
        ("otrunc", (n,)),
        ("drum", (1,)),
        ("drum", (2,)),
        ("drum", (max(na, nb),)),
        ("mitchell", ()),
        ("roba", ()),
        ("udm", ()),
        ("etm", (1,)),
        ("etm", (n,)),
    ]


def _reference_table(model: str, params: tuple[int, ...], ops: Operands) -> np.ndarray:
    out = np.zeros((1 << ops.a_bits, 1 << ops.b_bits), dtype=np.int64)
    for ia in range(1 << ops.a_bits):
        for ib in range(1 << ops.b_bits):
            a = signed_value(ia, ops.a_bits, ops.a_signed)
            b = signed_value(ib, ops.b_bits, ops.b_signed)
            out[ia, ib] = model_ref(model, a, b, ops.a_bits, ops.b_bits, *params)
    return out


WIDTHS = [(2, 2), (3, 3), (4, 4), (5, 3), (2, 5), (6, 6)]


@pytest.mark.parametrize("na,nb", WIDTHS)
@pytest.mark.parametrize("a_signed,b_signed", [(False, False), (True, True), (False, True)])
def test_models_match_reference_exhaustively(na: int, nb: int, a_signed: bool, b_signed: bool):
    ops = Operands(na, nb, a_signed, b_signed)
    for model, params in _cases(na, nb):
        m = build_model(model, params, ops)
        expected = _reference_table(model, params, ops)
        got = m.table.numpy().astype(np.int64)
        assert np.array_equal(got, expected), (model, params, ops)


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(
        ["trunc:5", "bam:2,7", "otrunc:3", "drum:3", "mitchell", "roba", "udm", "etm:4"]
    ),
    st.booleans(),
    st.integers(0, 255),
    st.integers(0, 255),
)
def test_models_match_reference_at_8_bits(spec: str, signed: bool, ia: int, ib: int):
    name, _, arg = spec.partition(":")
    params = tuple(int(p) for p in arg.split(",")) if arg else ()
    m = get_multiplier(f"{spec}@{'s' if signed else 'u'}8")
    a, b = signed_value(ia, 8, signed), signed_value(ib, 8, signed)
    assert int(m.table[ia, ib]) == model_ref(name, a, b, 8, 8, *params)
    assert int(m.lookup(a, b)) == int(m.table[ia, ib])


def test_truncation_textbook_oracle():
    """trunc:8@u8: ER 98.05 %, NMED 0.689 % (normalised by 255^2), WCE 1793."""
    met = get_multiplier("trunc:8@u8").metrics()
    assert round(met.er_percent, 2) == 98.05
    assert round(met.nmed_percent, 3) == 0.689
    assert met.wce == 1793
    assert met.mean_error < 0  # dropped columns only ever lose value


def test_mitchell_worst_case_relative_error():
    for spec in ("mitchell@u8", "mitchell@s8", "mitchell@u6"):
        met = get_multiplier(spec).metrics()
        assert round(met.wcre_percent, 1) == 11.1, spec
    magnitude_err = get_multiplier("mitchell@u8").error_table()
    assert int(magnitude_err.max()) == 0  # the piecewise-linear log never overestimates


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("bits", [3, 5, 8])
def test_drum_and_operand_truncation_error_rank_at_most_two(bits: int, signed: bool):
    tag = f"@{'s' if signed else 'u'}{bits}"
    ks = range(1, bits + 1) if bits < 8 else (2, 4, 6)
    for spec in [f"drum:{k}" for k in ks] + [f"otrunc:{k}" for k in ks if k < bits]:
        m = get_multiplier(spec + tag)
        assert m.metrics().rank <= 2, spec + tag  # numpy matrix_rank (see test_arith_metrics)
    assert np.linalg.matrix_rank(m.error_table().numpy().astype(np.float64)) == m.metrics().rank


def test_other_known_figures():
    """RoBA's error is (A-Ar)(B-Br) (rank 1); UDM's worst relative error is 2/9 = 22.2 %
    (Kulkarni et al.); DRUM-4's worst relative error is (9/8)^2 - 1."""
    assert get_multiplier("roba").metrics().rank == 1
    udm = get_multiplier("udm").metrics()
    assert round(udm.wcre_percent, 1) == 22.2
    assert udm.wce == 2 * 85 * 85
    assert get_multiplier("drum:4").metrics().wcre_percent == pytest.approx((81 / 64 - 1) * 100)


def test_exact_models_are_exact():
    for spec in ("exact@u8", "trunc:0@s5", "bam:0,0@u4", "otrunc:0", "drum:8", "etm:8@u8"):
        m = get_multiplier(spec)
        assert m.is_exact, spec
        assert m.metrics().er_percent == 0.0


def test_signed_models_are_odd_symmetric():
    for spec in ("drum:3@s6", "mitchell@s6", "etm:2@s6", "bam:1,4@s6"):
        m = get_multiplier(spec)
        vals = m.a_values().tolist()
        for a, b in itertools.product(range(-31, 32, 7), range(-31, 32, 5)):
            assert int(m.lookup(-a, b)) == -int(m.lookup(a, b)) or a == 0, (spec, a, b)
        assert len(vals) == 64


@pytest.mark.parametrize(
    "spec",
    [
        "trunc:16@u8",
        "bam:9,0@u8",
        "otrunc:9",
        "drum:0",
        "drum:9@u8",
        "etm:0",
        "etm:5@u4",
        "exact:1",
        "drum",
        "drum:1,2",
        "drum:x",
    ],
)
def test_bad_parameters_raise(spec: str):
    with pytest.raises(MultiplierError) as info:
        get_multiplier(spec)
    assert spec.split("@")[0].split(":")[0] in str(info.value)


def test_provenance_and_names():
    m = get_multiplier("bam:2,6@s8")
    assert m.name == "bam:2,6@s8"
    assert m.provenance["model"] == "bam"
    assert m.provenance["params"] == {"h": 2, "v": 6}
    assert m.provenance["signed_mode"] == "sign-magnitude"
    assert set(MODELS) >= {
        "exact",
        "trunc",
        "bam",
        "otrunc",
        "drum",
        "mitchell",
        "roba",
        "udm",
        "etm",
    }
