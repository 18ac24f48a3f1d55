import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.errors import InjectionError
from axdnn.inject.bits import apply_bits, format_width, int_qmax
from axdnn.inject.rng import trial_bits, trial_index, trial_uniform, trial_uniforms


def test_trial_draws_do_not_depend_on_grouping():
    ids = np.arange(100, 164)
    whole = trial_uniform(7, ids, 3)
    parts = np.concatenate([trial_uniform(7, ids[:10], 3), trial_uniform(7, ids[10:], 3)])
    assert np.array_equal(whole, parts)
    assert not np.array_equal(whole, trial_uniform(8, ids, 3))
    assert not np.array_equal(whole, trial_uniform(7, ids, 4))
    assert whole.min() >= 0 and whole.max() < 1


def _splitmix_reference(seed: int, trial: int, stream: int) -> int:
    """SplitMix64 in Python integers: the mixer applied to the (seed, stream) key, then to
    key + (trial + 1) * golden."""
    mask, golden = (1 << 64) - 1, 0x9E3779B97F4A7C15

    def mix(z: int) -> int:
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    key = mix(((seed & mask) * golden + stream * 0xD6E8FEB86659FD93) & mask)
    return mix((key + (trial + 1) * golden) & mask)


def test_trial_bits_match_a_python_splitmix64_and_fused_streams_match_single_ones():
    ids = np.array([0, 1, 17, 12345, 2**40 + 7])
    for seed, stream in [(0, 0), (7, 16), (-3, 30), (2**50, 1)]:
        expected = [_splitmix_reference(seed, int(t), stream) for t in ids]
        assert trial_bits(seed, ids, stream).tolist() == expected
    fused = trial_uniforms(5, ids, (0, 1, 16))
    for row, stream in zip(fused, (0, 1, 16), strict=True):
        assert np.array_equal(row, trial_uniform(5, ids, stream))


def test_trial_uniform_is_roughly_uniform():
    u = trial_uniform(0, np.arange(20000), 0)
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert counts.min() > 1800 and counts.max() < 2200
    idx = trial_index(0, np.arange(5000), 1, 7)
    assert set(np.unique(idx)) == set(range(7))


def _flip_float32_reference(x: float, bit: int) -> float:
    (raw,) = struct.unpack("<I", struct.pack("<f", x))
    return struct.unpack("<f", struct.pack("<I", raw ^ (1 << bit)))[0]


@settings(max_examples=40, deadline=None)
@given(st.floats(-1e6, 1e6, width=32), st.integers(0, 31))
def test_float32_flip_matches_struct_reference(x, bit):
    out = apply_bits(
        torch.tensor([[x]], dtype=torch.float32), "float32", torch.tensor([[1 << bit]]), "flip"
    )
    expected = _flip_float32_reference(x, bit)
    got = float(out)
    assert got == expected or (np.isnan(got) and np.isnan(expected))


@settings(max_examples=40, deadline=None)
@given(st.floats(-1000, 1000, width=16), st.integers(0, 15))
def test_float16_flip_matches_struct_reference(x, bit):
    (raw,) = struct.unpack("<H", struct.pack("<e", x))
    expected = struct.unpack("<e", struct.pack("<H", raw ^ (1 << bit)))[0]
    got = float(apply_bits(torch.tensor([[x]]), "float16", torch.tensor([[1 << bit]]), "flip"))
    assert got == expected or (np.isnan(got) and np.isnan(expected))


@settings(max_examples=60, deadline=None)
@given(st.integers(-128, 127), st.integers(0, 7), st.sampled_from(["flip", "set", "clear"]))
def test_int8_code_ops_match_python_ints(code, bit, op):
    scale = 0.5
    raw = code & 0xFF
    raw = {"flip": raw ^ (1 << bit), "set": raw | (1 << bit), "clear": raw & ~(1 << bit)}[op] & 0xFF
    expected = (raw - 256 if raw >= 128 else raw) * scale
    got = apply_bits(
        torch.tensor([[code * scale]]), "int8", torch.tensor([[1 << bit]]), op, torch.tensor(scale)
    )
    assert float(got) == expected


def test_uint_codes_and_widths():
    assert format_width("uint4") == 4 and int_qmax("uint4") == 15 and int_qmax("int4") == 7
    got = apply_bits(
        torch.tensor([[3.0]]), "uint4", torch.tensor([[1 << 3]]), "flip", torch.tensor(1.0)
    )
    assert float(got) == 11.0
    with pytest.raises(InjectionError, match="unknown bit format"):
        format_width("int99")
