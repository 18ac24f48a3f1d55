"""The spec-string registry: every documented form parses, specs round-trip, bad specs fail with a
FormatError that names the spec and lists the accepted forms."""

import json

import pytest
import torch

from axdnn.errors import AxError, FormatError
from axdnn.formats import (
    Binary,
    DoReFa,
    FixedPoint,
    FloatFormat,
    Format,
    Fpec,
    Identity,
    PactFormat,
    Ternary,
    format_forms,
    parse_format,
)

CASES = [
    ("fxp:8.4", FixedPoint(8, 4), 12),
    ("fxp:s8.4", FixedPoint(8, 4), 12),
    ("fxp:u8.0,round=floor,overflow=wrap", FixedPoint(8, 0, False, "floor", "wrap"), 8),
    ("int8", FixedPoint(8, 0), 8),
    ("uint4", FixedPoint(4, 0, signed=False), 4),
    ("fxp:4.2,round=sr,seed=7", FixedPoint(4, 2, rounding="stochastic", seed=7), 6),
    ("float:e5m10", FloatFormat(5, 10), 16),
    ("fp16", FloatFormat(5, 10), 16),
    ("bf16", FloatFormat(8, 7), 16),
    ("fp8_e4m3", FloatFormat(4, 3, fn=True), 8),
    ("float:e4m3fn", FloatFormat(4, 3, fn=True), 8),
    ("fp8_e5m2", FloatFormat(5, 2), 8),
    ("float:e8m23,trunc=13", FloatFormat(8, 23, trunc=13), 19),
    (
        "float:e5m2,bias=14,subnormals=off,round=rtz",
        FloatFormat(5, 2, 14, False, False, "toward_zero"),
        8,
    ),
    ("fp8_e4m3,overflow=nan", FloatFormat(4, 3, fn=True, overflow="nan"), 8),
    ("fpec:8.4,c=2", Fpec(8, 4, 2), 16),
    ("fpec:u6.2,c=1,skip=0.25", Fpec(6, 2, 1, 0.25, signed=False), 11),
    ("pact:4", PactFormat(4), 4),
    ("pact:2,alpha=6", PactFormat(2, 6.0), 2),
    ("dorefa:4", DoReFa(4), 4),
    ("binary", Binary(), 1),
    ("binary,per_channel=on", Binary(per_channel=True), 1),
    ("ternary", Ternary(), 2),
    ("ternary,ratio=0.5,per_channel=yes", Ternary(True, 0.5), 2),
    ("fp32", Identity(), 32),
    ("  FP16 ", FloatFormat(5, 10), 16),
]


@pytest.mark.parametrize("spec,expected,bits", CASES)
def test_parse_known_forms(spec: str, expected: Format, bits: int) -> None:
    fmt = parse_format(spec)
    assert fmt == expected
    assert fmt.bits == bits
    assert parse_format(fmt.spec) == fmt  # canonical spec round-trips
    record = json.loads(json.dumps(fmt.to_dict()))
    assert record["spec"] == fmt.spec and record["bits"] == bits
    assert Format.from_dict(record) == fmt
    assert hash(fmt) == hash(parse_format(fmt.spec))


def test_canonical_specs() -> None:
    assert parse_format("fxp:8.4").spec == "fxp:s8.4"
    assert parse_format("fxp:s8.0").spec == "int8"
    assert parse_format("float:e5m10").spec == "fp16"
    assert parse_format("float:e4m3fn,overflow=saturate").spec == "fp8_e4m3"
    assert parse_format("fpec:8.4,c=1,skip=0.1").spec == "fpec:s8.4,c=1"  # 0.1 is c=1's default
    assert parse_format("fxp:4.4,round=floor,seed=3").spec == "fxp:s4.4,round=floor"


BAD = [
    "",
    "fxp",
    "fxp:8",
    "fxp:0.4",
    "fxp:20.20",
    "int0",
    "uint33",
    "float:e1m2",
    "float:e5",
    "float:e5m60",
    "float:e5m2,trunc=3",
    "float:e4m3fn,overflow=inf",
    "float:e5m2,bias=-2000",
    "fp16:3",
    "fp16,bogus=1",
    "fxp:8.4,round=up",
    "fxp:8.4,overflow=clip",
    "int8,round",
    "int8,seed=x",
    "int8,round=floor,round=floor",
    "fpec:8.4,c=3",
    "fpec:8.4,skip=0.5",
    "pact:x",
    "pact:4,alpha=0",
    "dorefa:0",
    "binary:2",
    "binary,per_channel=maybe",
    "ternary,ratio=-1",
    "fp32,trunc=2",
    "posit:8",
]


@pytest.mark.parametrize("spec", BAD)
def test_bad_specs_raise_format_error(spec: str) -> None:
    with pytest.raises(FormatError) as info:
        parse_format(spec, source="plan.yaml: layers.conv1.weights")
    msg = str(info.value)
    assert repr(spec.strip()) in msg
    assert "plan.yaml: layers.conv1.weights" in msg
    assert isinstance(info.value, AxError)


def test_unknown_spec_lists_every_form() -> None:
    with pytest.raises(FormatError) as info:
        parse_format("posit:8")
    for form in format_forms():
        assert form in str(info.value)
    assert any(f.startswith("fxp:") for f in format_forms())


def test_quantize_rejects_integer_tensors() -> None:
    with pytest.raises(FormatError, match="int8"):
        parse_format("int8").quantize(torch.arange(4))


def test_parse_accepts_a_format() -> None:
    fmt = FixedPoint(4, 4)
    assert parse_format(fmt) is fmt
