"""The ledger agrees with axdnn.cost for the dense model and adds up per input and per layer."""

import json

import pytest
import torch

from axdnn.cost import count_ops
from axdnn.dynamic.accounting import OVERHEAD_KINDS, Ledger
from axdnn.dynamic.plan import DynamicPlan, LayerSetting
from axdnn.models import build_model


def test_dense_run_matches_cost_model_layer_by_layer(dyn, test_xy):
    x, y = test_xy
    dyn.set_plan(DynamicPlan())
    _, report, _ = dyn.evaluate(x[:40], y[:40])
    cost = {layer.name: layer.macs for layer in count_ops(dyn.model, (1, 8, 8)).layers}
    assert {layer.name: layer.dense_macs // 40 for layer in report.layers} == cost
    assert report.skipped_macs == 0 and report.overhead_ops == 0 and report.ops_ratio == 1.0


def test_lenet_dense_macs_match_cost_model():
    from axdnn.dynamic.model import DynamicModel

    model = build_model("lenet5", 1, 10).eval()
    dyn = DynamicModel(model, (1, 28, 28))
    assert sum(dyn.dense_macs.values()) == count_ops(model, (1, 28, 28)).total_macs
    assert dyn.dense_macs["conv1"] == 28 * 28 * 25 * 6


def test_executed_plus_skipped_is_dense_for_every_input(dyn, test_xy):
    x, y = test_xy
    plan = DynamicPlan(
        {
            n: LayerSetting("spet", fraction=0.5, alpha=0.0, block=1)
            for n in dyn.affine_layers(relu_only=True)
        }
    )
    dyn.set_plan(plan)
    _, report, _ = dyn.evaluate(x[:30], y[:30], batch_size=7)
    dense = sum(dyn.dense_macs.values())
    for ex, sk in zip(report.per_input_executed, report.per_input_skipped, strict=True):
        assert ex + sk == dense and 0 <= ex <= dense
    assert report.skipped_macs > 0
    assert sum(report.per_input_overhead) == report.overhead_ops > 0
    cost = report.to_cost_report(count_ops(dyn.model, (1, 8, 8)))
    assert cost.total_skipped_macs * 30 == pytest.approx(report.skipped_macs, rel=1e-3)
    record = json.loads(json.dumps(report.to_dict(per_input=True)))
    assert set(record["layers"][0]["overhead"]) == set(OVERHEAD_KINDS)
    assert len(record["per_input"]["executed_macs"]) == 30


def test_ledger_adds_rows_and_marks_exits():
    ledger = Ledger(4)
    ledger.layer("a", "dense", 10)
    ledger.add("a", torch.tensor([0, 2]), torch.tensor([10, 4]), gathers=3)
    ledger.exited(torch.tensor([1]), "a")
    report = ledger.report()
    assert report.per_input_executed == [10, 0, 4, 0]
    assert report.per_input_skipped == [0, 10, 6, 10]
    assert report.layers[0].overhead["gathers"] == 6 and report.layers[0].inputs == 2
    assert report.exit_counts() == {"end": 3, "a": 1}
    assert abs(report.ops_ratio - 40 / 20) < 1e-12
