"""The catalogue of built-in models used by `axdnn multipliers list`."""

from __future__ import annotations

import json

import pytest

from axdnn.arith import MODELS, catalogue, get_multiplier
from axdnn.errors import MultiplierError


@pytest.mark.parametrize("width,signed", [(8, False), (4, True), (2, False)])
def test_catalogue_covers_every_model(width, signed):
    rows = catalogue(width, signed)
    assert {r["model"] for r in rows} == set(MODELS)
    tag = f"@{'s' if signed else 'u'}{width}"
    for r in rows:
        assert r["spec"].endswith(tag)
        m = get_multiplier(r["spec"])
        assert r["content_hash"] == m.content_hash
        assert r["metrics"] == m.metrics().to_dict()
    json.dumps(rows)
    exact = next(r for r in rows if r["model"] == "exact")
    assert exact["metrics"]["wce"] == 0


def test_catalogue_rejects_bad_width():
    with pytest.raises(MultiplierError, match="catalogue width 9"):
        catalogue(9)
