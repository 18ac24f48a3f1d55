"""Early exits: inputs leave at confident exits, the rest run on as a smaller batch and every
output lands back in its own row."""

import pytest
import torch

from axdnn.dynamic.plan import DynamicPlan
from axdnn.errors import DynamicError


@pytest.fixture(scope="module")
def with_exits(dyn, digits):
    xt, yt = digits.train.tensors
    acc = dyn.train_exits(["features.0", "features.6"], xt, yt, epochs=5, seed=0)
    assert set(acc) == {"features.0", "features.6"} and all(a > 0.5 for a in acc.values())
    return dyn


def test_nothing_exits_above_certainty(with_exits, test_xy):
    x, y = test_xy
    with_exits.set_plan(DynamicPlan(exits={"features.0": 1.01}))
    with torch.no_grad():
        assert torch.allclose(with_exits(x), with_exits.model(x), atol=1e-4)
    report = with_exits.evaluate(x, y)[1]
    assert report.exit_counts() == {"end": len(x)}
    assert report.layers[-1].skipped_macs == 0


def test_all_exit_at_threshold_zero_and_skip_every_later_layer(with_exits, test_xy):
    x, y = test_xy
    with_exits.set_plan(DynamicPlan(exits={"features.0": 0.0}))
    out = with_exits(x)
    with torch.no_grad():
        assert torch.allclose(out, with_exits.heads["features.0"](with_exits.chain[0](x)))
    report = with_exits.evaluate(x, y)[1]
    assert report.exit_counts() == {"features.0": len(x)}
    later = [layer for layer in report.layers if layer.name in ("features.3", "features.7", "fc")]
    assert later and all(layer.executed_macs == 0 and layer.inputs == 0 for layer in later)
    assert report.layers[0].executed_macs == report.layers[0].dense_macs
    assert report.layers[1].name == "exit@features.0" and report.layers[1].overhead_ops > 0


def test_mixed_exits_scatter_each_output_to_its_row(with_exits, test_xy):
    x, y = test_xy
    x = x[:64]
    with_exits.set_plan(DynamicPlan(exits={"features.0": 0.9, "features.6": 0.9}))
    out = with_exits(x)
    report = with_exits.evaluate(x, y[:64], batch_size=64)[1]
    first = with_exits.heads["features.0"](with_exits.chain[0](x))
    with torch.no_grad():
        dense = with_exits.model(x)
    where = report.exited_at
    assert len(set(where)) >= 2  # a real mix
    for i, w in enumerate(where):
        if w == "features.0":
            assert torch.allclose(out[i], first[i], atol=1e-5)
        elif w == "end":
            assert torch.allclose(out[i], dense[i], atol=1e-4)
    # batch 1 gives the same answers as the batched run
    single = torch.cat([with_exits(x[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(single, out, atol=1e-5)


def test_exit_errors_name_the_step(dyn):
    with pytest.raises(DynamicError, match="nowhere"):
        dyn.train_exits(["nowhere"], torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(DynamicError, match="no exit head"):
        dyn.set_plan(DynamicPlan(exits={"pool": 0.5}))
