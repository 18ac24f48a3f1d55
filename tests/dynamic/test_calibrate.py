"""Calibration keeps the held-out drop within the budget and reports what it tried."""

import json

import pytest
import torch
from torch import nn

from axdnn.dynamic.calibrate import calibrate
from axdnn.dynamic.chain import trace_chain
from axdnn.dynamic.plan import DynamicPlan, LayerSetting
from axdnn.errors import DynamicError


@pytest.mark.parametrize(
    ("budget", "mechanisms"), [(0.0, ("exit", "sdss")), (2.0, ("spet", "exit"))]
)
def test_held_out_drop_stays_within_budget(dyn, digits, budget, mechanisms):
    xt, yt = digits.train.tensors
    dyn.train_exits(["features.0"], xt[:400], yt[:400], epochs=5)
    xv, yv = digits.val.tensors
    xv, yv = xv[:100], yv[:100]
    cal = calibrate(dyn, xv, yv, budget, mechanisms=mechanisms)
    assert 100 * (cal.dense_accuracy - cal.accuracy) <= budget + 1e-9
    record = json.loads(json.dumps(cal.to_dict()))
    assert record["trials"] and any(t["accepted"] for t in record["trials"]) == (cal.ops_ratio > 1)
    assert dyn.plan.to_dict() == cal.plan.to_dict()
    if budget == 0.0:
        assert record["drop_points"] <= 0.0


def test_calibration_rejects_bad_budget_and_mechanism(dyn, digits):
    xv, yv = digits.val.tensors
    with pytest.raises(DynamicError, match="budget"):
        calibrate(dyn, xv, yv, -1.0)
    with pytest.raises(DynamicError, match="warp"):
        calibrate(dyn, xv, yv, 0.5, mechanisms=("warp",))


def test_plan_round_trips_and_rejects_unknown_names(dyn):
    plan = DynamicPlan({"features.3": LayerSetting("sdss", delta=0.2)}, {})
    assert DynamicPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    with pytest.raises(DynamicError, match="nonexistent"):
        dyn.set_plan(DynamicPlan({"nonexistent": LayerSetting("spet")}))
    with pytest.raises(DynamicError, match="magic"):
        LayerSetting("magic")
    with pytest.raises(DynamicError, match="linear"):
        dyn.set_plan(DynamicPlan({"fc": LayerSetting("sdss")}))


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        return self.a(x) + self.b(x)


def test_non_chain_model_is_a_clear_error():
    with pytest.raises(DynamicError, match="not a chain"):
        trace_chain(_Branchy())


def test_batch_norm_is_folded_exactly(trained_cnn):
    x = torch.randn(5, 1, 8, 8)
    chain = trace_chain(trained_cnn)
    y = x
    for item in chain:
        y = item(y)
    with torch.no_grad():
        assert torch.allclose(y, trained_cnn(x), atol=1e-4)
    assert [i.name for i in chain][:2] == ["features.0", "features.3"]
