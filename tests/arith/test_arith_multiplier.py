"""The Multiplier object: validation, content identity, operand domains and lookups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.arith import Multiplier, get_multiplier
from axdnn.errors import MultiplierError


def _exact(bits_a: int, bits_b: int, sa: bool, sb: bool) -> Multiplier:
    return get_multiplier(f"exact@{'s' if sa else 'u'}{bits_a}x{'s' if sb else 'u'}{bits_b}")


def test_validation_errors():
    good = torch.zeros(16, 16, dtype=torch.int32)
    Multiplier(good, 4, 4)
    with pytest.raises(MultiplierError, match="dtype"):
        Multiplier(good.to(torch.int64), 4, 4)
    with pytest.raises(MultiplierError, match="shape"):
        Multiplier(good, 4, 5)
    with pytest.raises(MultiplierError, match="a_bits=1"):
        Multiplier(torch.zeros(2, 16, dtype=torch.int32), 1, 4)
    with pytest.raises(MultiplierError, match="b_bits=9"):
        Multiplier(torch.zeros(16, 512, dtype=torch.int32), 4, 9)
    with pytest.raises(MultiplierError, match="torch.int32 tensor"):
        Multiplier(np.zeros((16, 16), dtype=np.int32), 4, 4)
    with pytest.raises(MultiplierError, match="int32"):
        Multiplier.from_array(np.full(256, 2**40), 4, 4)
    with pytest.raises(MultiplierError, match="integer dtype"):
        Multiplier.from_array(np.zeros(256), 4, 4)
    with pytest.raises(MultiplierError, match="entries"):
        Multiplier.from_array(np.zeros(100, dtype=np.int64), 4, 4)


def test_content_identity_ignores_name_and_provenance():
    m = get_multiplier("drum:3@u5")
    twin = Multiplier(m.table.clone(), 5, 5, name="other", provenance={"x": 1})
    assert twin == m and hash(twin) == hash(m)
    assert len({m, twin}) == 1
    assert Multiplier(m.table.clone(), 5, 5, a_signed=True, b_signed=True) != m
    changed = m.table.clone()
    changed[3, 4] += 1
    assert Multiplier(changed, 5, 5).content_hash != m.content_hash
    assert get_multiplier("exact@u4x5") != get_multiplier("exact@u5x4")


def test_table_is_copied_on_construction():
    t = torch.zeros(4, 4, dtype=torch.int32)
    m = Multiplier(t, 2, 2)
    before = m.content_hash
    t[0, 0] = 5
    assert int(m.table[0, 0]) == 0
    assert Multiplier(m.table.clone(), 2, 2).content_hash == before


def test_operand_values_follow_twos_complement_indexing():
    m = _exact(3, 2, True, False)
    assert m.a_values().tolist() == [0, 1, 2, 3, -4, -3, -2, -1]
    assert m.b_values().tolist() == [0, 1, 2, 3]
    assert m.a_range == (-4, 3) and m.b_range == (0, 3)
    assert m.index_a(torch.tensor([-4, -1, 0, 3])).tolist() == [4, 7, 0, 3]
    assert m.exact_table()[5, 3] == -9
    assert m.error_table().abs().sum() == 0
    assert m.operand_tags == "s3xu2"


@settings(max_examples=30, deadline=None)
@given(
    st.integers(2, 8),
    st.integers(2, 8),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**31 - 1),
)
def test_lookup_equals_exact_product_for_exact_table(na, nb, sa, sb, seed):
    m = _exact(na, nb, sa, sb)
    gen = torch.Generator().manual_seed(seed)
    a = torch.randint(m.a_range[0], m.a_range[1] + 1, (5, 3), generator=gen)
    b = torch.randint(m.b_range[0], m.b_range[1] + 1, (3,), generator=gen)
    out = m.lookup(a, b)
    assert out.dtype == torch.int32 and out.shape == (5, 3)
    assert torch.equal(out.to(torch.int64), a * b)


def test_lookup_rejects_out_of_range_and_float_codes():
    m = get_multiplier("exact@s4")
    with pytest.raises(MultiplierError, match="-9..0"):
        m.lookup(torch.tensor([-9, 0]), torch.tensor([1, 1]))
    with pytest.raises(MultiplierError, match="operand b"):
        m.lookup(0, 8)
    with pytest.raises(MultiplierError, match="dtype"):
        m.lookup(torch.tensor([0.5]), torch.tensor([1]))


def test_describe_is_json_ready_and_metrics_cached():
    m = get_multiplier("mitchell@u6")
    record = json.loads(json.dumps(m.describe()))
    assert record["content_hash"] == m.content_hash
    assert record["provenance"]["model"] == "mitchell"
    assert m.metrics() is m.metrics()
    assert json.loads(json.dumps(m.metrics().to_dict()))["wce"] == m.metrics().wce


def test_pickle_round_trip_keeps_identity():
    import pickle

    m = get_multiplier("etm:3@s6")
    m.metrics()
    back = pickle.loads(pickle.dumps(m))
    assert back == m and back.name == m.name and back.metrics() == m.metrics()
