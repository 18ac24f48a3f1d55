"""ReD-CaNe: per-operation noise sweeps, resilience ranking, multiplier choice through noise
models and its confirmation with the real product tables."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import TensorDataset

from axdnn.analysis.redcane import (
    ComponentChoice,
    NoisePoint,
    OperationSweep,
    RedcaneResult,
    choose_components,
    compare_groups,
    confirm_choices,
    energy_saving,
    functional_plans_supported,
    multiplier_noise,
    rank_operations,
    resolve_operations,
    sweep_operations,
)
from axdnn.arith import get_multiplier
from axdnn.data import load_dataset
from axdnn.errors import RedcaneError
from axdnn.models import build_model
from axdnn.nn import Plan, approximate
from axdnn.train import TrainConfig, fit


@pytest.fixture(scope="module")
def trained():
    """A small CapsNet (2 routing iterations) trained briefly on digits, and test tensors."""
    bundle = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = build_model("capsnet", 1, 10, image_size=8, routing_iterations=2, decoder=False)
    x, y = bundle.train.tensors
    subset = TensorDataset(x[:600], y[:600])
    fit(model, subset, bundle.val, 10, TrainConfig(epochs=4, lr=1e-2, seed=0))
    tx, ty = bundle.test.tensors
    return model.eval(), x[:128], tx[:120], ty[:120]


def test_operations_resolve_to_sites_and_bad_patterns_are_named():
    model = build_model("capsnet", 1, 10, image_size=8, routing_iterations=2).eval()
    x = torch.randn(2, 1, 8, 8)
    ops = resolve_operations(model, None, x)  # the model's own map
    assert ops["routing_softmax"] == ["digit.softmax.softmax#0", "digit.softmax.softmax#1"]
    assert ops["conv1"] == ["conv1"] and ops["agreement"] == ["digit.agreement.matmul#0"]
    with pytest.raises(RedcaneError, match="'digit.nothing#\\*'"):
        resolve_operations(model, {"bad": ["digit.nothing#*"]}, x)
    plain = build_model("digits_cnn", 1, 10).eval()  # no map: one per MAC-bearing layer
    assert list(resolve_operations(plain, None, x)) == [
        "features.0",
        "features.3",
        "features.7",
        "fc",
    ]


def test_multiplier_noise_models():
    assert multiplier_noise("exact@u8") == {"magnitude": 0.0, "mean": 0.0}
    coarse, fine = multiplier_noise("drum:4@u8"), multiplier_noise("drum:6@u8")
    assert coarse["magnitude"] > fine["magnitude"] > 0
    m = get_multiplier("trunc:8@u8")
    err = m.error_table().double()
    centred = torch.arange(256).double() - 128  # products about the zero points
    rms = (centred[:, None] * centred[None, :]).square().mean().sqrt()
    got = multiplier_noise("trunc:8@u8")
    assert got["magnitude"] == pytest.approx(float(err.std(correction=0) / rms))
    assert got["mean"] == pytest.approx(float(err.mean() / rms)) and got["mean"] < 0  # truncates


def test_sweep_ranks_with_intervals_and_is_seeded(trained):
    model, _, x, y = trained
    ops = {"lengths": ["lengths.linalg_vector_norm#*"], "softmax": ["digit.softmax.softmax#*"]}
    kw = dict(magnitudes=(1e-6, 0.3, 3.0), means=(0.2,), repeats=1, budget=0.02, seed=3)
    result = sweep_operations(model, x, y, ops, **kw)
    assert result.baseline_accuracy > 0.8
    for sweep in result.sweeps:
        drops = {p.magnitude: p.drop for p in sweep.points if p.mean == 0}
        assert drops[1e-6] == 0  # negligible noise changes no prediction
        within = [m for m in sorted(drops) if all(drops[k] <= 0.02 for k in drops if k <= m)]
        assert sweep.tolerated_magnitude == max(within)
        assert sweep.score_low <= sweep.score <= sweep.score_high
        assert all(p.low <= p.accuracy <= p.high for p in sweep.points)
    lengths = result.sweep("lengths")
    assert {p.magnitude: p.drop for p in lengths.points}[3.0] > 0.2  # class lengths swamped
    assert [r["rank"] for r in result.ranking] == [1, 2]
    again = sweep_operations(model, x, y, ops, **kw)
    assert again.to_dict() == result.to_dict()
    json.dumps(result.to_dict())


def test_bad_grid_is_a_clear_error(trained):
    model, _, x, y = trained
    with pytest.raises(RedcaneError, match="relative_to='range'"):
        sweep_operations(model, x, y, relative_to="range")
    with pytest.raises(RedcaneError, match="magnitudes"):
        sweep_operations(model, x, y, magnitudes=(0.0,))
    with pytest.raises(RedcaneError, match="budget"):
        sweep_operations(model, x, y, budget=2)


def _sweep(name, sites, macs, tolerated, mean=None, score=0.0):
    point = NoisePoint(tolerated, 0.0, 0.9, 0.85, 0.95, 0.0)
    return OperationSweep(name, sites, macs, [point], tolerated, mean, score, score, score)


def _result(*sweeps, budget=0.01):
    return RedcaneResult("std", [0.1], [], budget, 10, 1, 0, 0.9, list(sweeps), [])


def test_choice_takes_the_cheapest_multiplier_within_the_tolerated_noise():
    model = build_model("capsnet", 1, 10, image_size=8, routing_iterations=2).eval()
    drum4, drum6 = multiplier_noise("drum:4@u8"), multiplier_noise("drum:6@u8")
    between = (drum4["magnitude"] + drum6["magnitude"]) / 2
    result = _result(
        _sweep("conv1", ["conv1"], 10, 1.0),
        _sweep("primary", ["primary.conv"], 10, between),
        _sweep("votes", ["digit.votes.matmul#0"], 10, 0.0),
        _sweep("softmax", ["digit.softmax.softmax#0"], 0, 1.0),  # no MACs: no multiplier
    )
    costs = {"exact@u8": 1.0, "drum:4@u8": 0.5, "drum:6@u8": 0.8}
    choices = choose_components(result, model, ["drum:6@u8", "drum:4@u8"], (1, 8, 8), costs=costs)
    picked = {c.operation: c.multiplier for c in choices}
    assert picked == {"conv1": "drum:4@u8", "primary": "drum:6@u8", "votes": None}
    assert result.cost_rule == "given" and choices[0].relative_cost == 0.5
    strict = _result(_sweep("conv1", ["conv1"], 10, 1.0, mean=0.0))  # no bias tolerated
    (only,) = choose_components(strict, model, ["drum:4@u8"], (1, 8, 8), costs=costs)
    assert only.multiplier is None  # drum's bias grows with the reduction length
    with pytest.raises(RedcaneError, match="candidate"):
        choose_components(result, model, [], (1, 8, 8))


def test_energy_saving_prices_the_chosen_operations():
    model = build_model("capsnet", 1, 10, image_size=8, routing_iterations=2).eval()
    result = _result()
    result.costs, result.cost_rule = {"exact@u8": 1.0}, "given"
    result.choices = [ComponentChoice("primary", ["primary.conv"], 1, "x", 0.0, 0.0, 0.5)]
    saving = energy_saving(result, model, (1, 8, 8))["saving"]
    result.choices[0].relative_cost = 1.0
    assert saving > 0 and energy_saving(result, model, (1, 8, 8))["saving"] == 0


def test_confirmation_backs_off_until_the_budget_holds(trained):
    model, calib, x, y = trained
    ops = {"conv1": ["conv1"], "primary": ["primary.conv"]}
    result = sweep_operations(model, x, y, ops, magnitudes=(0.5,), repeats=1, budget=0.0)
    candidates = ["etm:4@u8", "drum:3@u8"]
    choose_components(result, model, candidates, (1, 8, 8))
    for c in result.choices:  # force the crudest multiplier everywhere
        c.multiplier, c.noise_magnitude = "etm:4@u8", multiplier_noise("etm:4@u8")["magnitude"]
    record = confirm_choices(result, model, calib, x, y, candidates=candidates)
    assert record["within_budget"] and record["drop"] <= 0
    assert len(record["rounds"]) >= 2 and record["rounds"][0]["drop"] > 0
    assert record["rounds"][-1]["plan"] == result.plan


def test_compare_groups_and_ranking_order():
    result = _result(
        _sweep("a", ["a"], 0, 1.0, score=0.01),
        _sweep("b", ["b"], 0, 0.2, score=0.05),
        _sweep("c", ["c"], 0, 1.0, score=0.0),
    )
    assert [r["operation"] for r in rank_operations(result.sweeps)] == ["c", "a", "b"]
    verdict = compare_groups(result, ["a", "c"], ["b"])
    assert verdict["first_more_resilient"] and verdict["second_tolerated_magnitude"] == 0.2
    assert not compare_groups(result, ["b"], ["c"])["first_more_resilient"]


@pytest.mark.slow
@pytest.mark.skipif(not functional_plans_supported(), reason="functional sites not in plans")
def test_exact_tables_give_the_float_predictions(trained):
    model, calib, x, y = trained
    approx = approximate(model, Plan.uniform("exact@u8"), calib)
    ops = {r.name for r in approx.approximation.layers if r.status == "approximate"}
    assert {"digit.votes.matmul#0", "digit.weighted.matmul#1", "conv1"} <= ops
    with torch.no_grad():
        same = (approx(x[:60]).argmax(1) == model(x[:60]).argmax(1)).float().mean()
    assert same >= 0.98  # 8-bit quantization of every MAC, functional ones included
