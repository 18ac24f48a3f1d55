"""Studies: every evaluation is one Optuna trial; fronts, resuming, strategies, stored identity."""

import optuna
import pytest
from torch.utils.data import TensorDataset

from axdnn.analysis.accuracy import tensor_accuracy
from axdnn.errors import SearchError
from axdnn.nn import Plan, approximate, multiplying_layers
from axdnn.search import Evaluator, Explorer, SearchSettings, Space, TrialRecord, pareto_front

from .conftest import SPACE


@pytest.fixture(scope="module")
def calibration(digits):
    """Two calibration batches (the default is eight): enough for tests, four times cheaper."""
    x, y = digits.train.tensors
    return TensorDataset(x[:128], y[:128])


@pytest.fixture(scope="module")
def evaluator(trained_cnn, digits, calibration):
    return Evaluator(trained_cnn, calibration, digits.val.tensors, digits.input_shape, subset=90)


@pytest.fixture(scope="module")
def bound(trained_cnn):
    return Space.from_dict(SPACE).bind(list(multiplying_layers(trained_cnn)))


def explorer(bound, evaluator, storage, **settings):
    return Explorer(bound, evaluator, SearchSettings(**settings), storage)


def test_random_study_stores_every_trial_and_a_feasible_front(bound, evaluator, tmp_path):
    ex = explorer(bound, evaluator, tmp_path / "s.db", strategy="random", trials=5)
    assert ex.run(progress=False) == 5
    records = ex.records()
    assert [r.number for r in records] == list(range(5))
    for r in records:  # the stored figures are the plan's real ones
        plan = Plan.from_dict(r.plan)
        assert r.measure["energy_pj"] == pytest.approx(evaluator.cost(plan).energy_pj)
        assert r.drop == pytest.approx(evaluator.float_accuracy - r.measure["accuracy"])
        assert r.feasible == (r.drop <= 0.02)
    front = pareto_front(records, ["accuracy", "energy"])
    assert front and all(r.feasible for r in front)
    for r in front:
        assert not any(
            o.feasible and o.values["accuracy"] >= r.values["accuracy"]
            and o.values["energy"] <= r.values["energy"] and o.values != r.values
            for o in records
        )  # fmt: skip


def test_confirmation_measures_the_whole_validation_split(
    bound, evaluator, trained_cnn, digits, calibration, tmp_path
):
    ex = explorer(bound, evaluator, tmp_path / "s.db", strategy="random", trials=2)
    ex.run(progress=False)
    record = ex.confirm(ex.records()[:1])[0]
    x, y = digits.val.tensors
    plan = Plan.from_dict(record.plan)
    expected = tensor_accuracy(approximate(trained_cnn, plan, calibration, seed=0), x, y)
    assert record.confirmed == {"accuracy": expected, "samples": len(y),
                                "drop": pytest.approx(evaluator.float_accuracy_full - expected)}  # fmt: skip
    again = explorer(bound, evaluator, tmp_path / "s.db", strategy="random", trials=2)
    assert again.records()[0].confirmed["accuracy"] == expected  # stored with the study


def test_rerun_continues_the_study(bound, evaluator, tmp_path):
    first = explorer(bound, evaluator, tmp_path / "s.db", strategy="tpe", trials=3)
    first.run(progress=False)
    before = [(r.number, r.params) for r in first.records()]
    second = explorer(bound, evaluator, tmp_path / "s.db", strategy="tpe", trials=5)
    assert second.run(progress=False) == 2
    assert [(r.number, r.params) for r in second.records()][:3] == before
    assert len(second.records()) == 5
    assert explorer(bound, evaluator, tmp_path / "s.db", strategy="tpe", trials=5).run(False) == 0


def test_nsga2_runs_generations(bound, evaluator, tmp_path):
    ex = explorer(bound, evaluator, tmp_path / "s.db", strategy="nsga2", trials=6, population=3)
    assert ex.run(progress=False) == 6
    study = optuna.load_study(study_name="explore-nsga2", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert len(study.directions) == 2 and study.user_attrs["axdnn"]["strategy"] == "nsga2"


def test_study_with_other_settings_is_refused(bound, evaluator, tmp_path):
    explorer(bound, evaluator, tmp_path / "s.db", strategy="random", trials=1, study="x")
    with pytest.raises(SearchError, match="study 'x' .* different objectives"):
        explorer(bound, evaluator, tmp_path / "s.db", strategy="random", study="x",
                 objectives=["accuracy", "macs"])  # fmt: skip


def test_greedy_walks_cheapest_first_and_replays_on_rerun(bound, evaluator, tmp_path):
    ex = explorer(bound, evaluator, tmp_path / "s.db", strategy="greedy", trials=8)
    ran = ex.run(progress=False)
    records = ex.records()
    assert 1 <= ran == len(records) <= 8
    assert set(records[0].params.values()) == {"exact@u8"}  # starts at the reference
    feasible = [r for r in records if r.feasible]
    assert min(r.measure["energy_pj"] for r in feasible) < records[0].measure["energy_pj"]
    attrs = ex.study.user_attrs
    assert sorted(attrs["greedy:order"]) == sorted(u.name for u in bound.units)
    assert any(k.startswith("greedy:screen:") for k in attrs)  # noise verdicts, stored
    again = explorer(bound, evaluator, tmp_path / "s.db", strategy="greedy", trials=8)
    assert again.run(progress=False) == 0  # the walk replays its stored trials


def test_bad_settings_are_clear_errors():
    with pytest.raises(SearchError, match="unknown strategy 'anneal'; accepted: nsga2"):
        SearchSettings.build(strategy="anneal")
    with pytest.raises(SearchError, match="objectives"):
        SearchSettings.build(objectives=["accuracy", "speed"])
    with pytest.raises(SearchError, match="trials=0"):
        SearchSettings.build(trials=0)


def test_pareto_front_drops_dominated_and_infeasible_points():
    def rec(n, acc, energy, feasible=True):
        return TrialRecord(n, {}, {"accuracy": acc, "energy": energy}, {}, 0, 0, feasible, {})

    records = [rec(0, 0.9, 10), rec(1, 0.95, 20), rec(2, 0.8, 30), rec(3, 0.99, 5, False)]
    assert [r.number for r in pareto_front(records, ["accuracy", "energy"])] == [0, 1]
