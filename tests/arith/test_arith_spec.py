"""Spec strings: parsing, registry, caching and the lut: forms."""

from __future__ import annotations

import os

import numpy as np
import pytest

from axdnn.arith import (
    Multiplier,
    Operands,
    get_multiplier,
    list_multipliers,
    parse_spec,
    register_multiplier,
)
from axdnn.arith.spec import parse_c_arg, parse_lut_arg
from axdnn.errors import MultiplierError


@pytest.mark.parametrize(
    "spec,name,arg,ops",
    [
        ("exact", "exact", None, None),
        ("trunc:6", "trunc", "6", None),
        ("bam:2,6@s8", "bam", "2,6", Operands(8, 8, True, True)),
        (" drum:4@u4 ", "drum", "4", Operands(4, 4, False, False)),
        ("udm@u8xs6", "udm", None, Operands(8, 6, False, True)),
        ("roba@s8x4", "roba", None, Operands(8, 4, True, True)),
        ("lut:dir/m.bin:u16@u8", "lut", "dir/m.bin:u16", Operands(8, 8, False, False)),
        ("c:/x/a@b/m.c", "c", "/x/a@b/m.c", None),
    ],
)
def test_parse_spec(spec, name, arg, ops):
    parsed = parse_spec(spec)
    assert (parsed.name, parsed.arg, parsed.operands) == (name, arg, ops)


@pytest.mark.parametrize("spec,match", [
    ("", "empty"), ("exact@u9", "out of range"), ("exact@u1", "out of range"),
    ("exact@x8", "bad operand suffix"), ("drum@8", "bad operand suffix"),
])  # fmt: skip
def test_parse_errors(spec, match):
    with pytest.raises(MultiplierError, match=match):
        get_multiplier(spec)


def test_unknown_name_lists_known_ones():
    with pytest.raises(MultiplierError) as info:
        get_multiplier("wallace:3")
    for name in ("exact", "drum", "lut", "c", "mitchell"):
        assert name in str(info.value)


def test_default_operands_and_cache():
    m = get_multiplier("drum:4")
    assert (m.a_bits, m.b_bits, m.a_signed, m.b_signed) == (8, 8, False, False)
    assert m.name == "drum:4@u8"
    assert get_multiplier("drum:4") is m
    assert get_multiplier("drum:4@u8") == m
    assert get_multiplier(m) is m


def test_register_multiplier():
    calls = []

    def factory(arg, operands):
        calls.append((arg, operands))
        ops = operands or Operands(2, 2)
        base = get_multiplier(f"exact@{ops.tag}")
        return Multiplier(base.table + int(arg or 0), name=f"offset:{arg}", **ops.as_kwargs())

    register_multiplier("test_offset", factory, replace=True)
    assert "test_offset" in list_multipliers()
    m = get_multiplier("test_offset:1@u3")
    assert int(m.table[2, 3]) == 7
    assert get_multiplier("test_offset:1@u3") is m and len(calls) == 1
    with pytest.raises(MultiplierError, match="already registered"):
        register_multiplier("test_offset", factory)
    with pytest.raises(MultiplierError, match="invalid"):
        register_multiplier("Bad-Name", factory)

    register_multiplier("test_wrong_width", lambda arg, ops: get_multiplier("exact@u4"),
                        replace=True)  # fmt: skip
    with pytest.raises(MultiplierError, match="asks for u5"):
        get_multiplier("test_wrong_width@u5")


def test_lut_arguments():
    assert parse_lut_arg("t/m.bin") == (parse_lut_arg("t/m.bin")[0], None)
    assert parse_lut_arg("t/m.bin:uint16")[1] == "uint16"
    assert parse_lut_arg("t/m.bin?dtype=i16be")[1] == "i16be"
    assert str(parse_lut_arg("t/odd:name.bin")[0]) == "t/odd:name.bin"
    assert parse_c_arg("m.c:mul8u_X")[1] == "mul8u_X"
    with pytest.raises(MultiplierError, match="unknown option"):
        parse_lut_arg("t/m.bin?fmt=1")
    with pytest.raises(MultiplierError, match="needs a file path"):
        get_multiplier("lut:")


def test_lut_formats_round_trip(tmp_path):
    ref = get_multiplier("mitchell@u6")
    table = ref.table.numpy()
    table.astype("<u2").tofile(tmp_path / "m.bin")
    table.astype(">u4").tofile(tmp_path / "m32.raw")
    np.save(tmp_path / "m.npy", table.astype(np.int64))
    np.savetxt(tmp_path / "m.csv", table, fmt="%d", delimiter=",")
    np.savetxt(tmp_path / "m.txt", table, fmt="%d")
    specs = [
        f"lut:{tmp_path}/m.bin",
        f"lut:{tmp_path}/m.bin@u6",
        f"lut:{tmp_path}/m.bin:uint16",
        f"lut:{tmp_path}/m32.raw?dtype=u32be",
        f"lut:{tmp_path}/m32.raw:>u4@u6",
        f"lut:{tmp_path}/m.npy",
        f"lut:{tmp_path}/m.csv",
        f"lut:{tmp_path}/m.txt@u6",
    ]
    for spec in specs:
        m = get_multiplier(spec)
        assert m == ref, spec
        assert m.provenance["kind"] == "lut"


def test_lut_signed_and_rectangular(tmp_path):
    ref = get_multiplier("drum:2@s4xu3")
    ref.table.numpy().astype("<i2").tofile(tmp_path / "s.bin")
    np.save(tmp_path / "s.npy", ref.table.numpy())
    assert get_multiplier(f"lut:{tmp_path}/s.bin@s4xu3") == ref  # int16 default when signed
    assert get_multiplier(f"lut:{tmp_path}/s.npy@s4xu3") == ref
    with pytest.raises(MultiplierError, match="4\\*\\*n"):
        get_multiplier(f"lut:{tmp_path}/s.bin")  # 128 entries: widths must be stated


def test_lut_cache_follows_file_changes(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, get_multiplier("exact@u3").table.numpy())
    first = get_multiplier(f"lut:{path}")
    assert first.is_exact
    np.save(path, get_multiplier("udm@u3").table.numpy())
    os.utime(path, ns=(1, 1))  # make sure the stamp differs even on coarse clocks
    assert get_multiplier(f"lut:{path}") == get_multiplier("udm@u3")


@pytest.mark.parametrize("content,spec_tail,match", [
    (b"\x00" * 100, "", "4\\*\\*n"),
    (b"\x00" * 131073, "", "whole number"),
    (b"\x00" * 131072, "@u4", "do not fit u4"),
    (b"\x00" * 256, ":float32", "unknown dtype"),
])  # fmt: skip
def test_raw_table_errors(tmp_path, content, spec_tail, match):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(MultiplierError, match=match):
        get_multiplier(f"lut:{path}{spec_tail}")


def test_text_and_npy_errors(tmp_path):
    (tmp_path / "a.csv").write_text("1,2\n3\n")
    (tmp_path / "b.csv").write_text("1,2,x,4\n")
    np.save(tmp_path / "c.npy", np.zeros((16, 16)))
    np.save(tmp_path / "d.npy", np.zeros((16, 12), dtype=np.int32))
    for name, match in [("a.csv", "different lengths"), ("b.csv", "'x' is not an integer"),
                        ("c.npy", "integer dtype"), ("d.npy", "shape"),
                        ("missing.bin", "does not exist")]:  # fmt: skip
        with pytest.raises(MultiplierError, match=match):
            get_multiplier(f"lut:{tmp_path}/{name}")
    with pytest.raises(MultiplierError, match="raw binary"):
        get_multiplier(f"lut:{tmp_path}/c.npy:u16")
