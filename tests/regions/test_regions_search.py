"""Search, baseline, checkpoints, resume from SQLite and the user-region registry."""

import numpy as np
import optuna
import pytest

from axdnn.errors import RegionError
from axdnn.regions import Region, get_region, register_region
from axdnn.regions.mlp import (
    Pairs,
    Topology,
    TrainSettings,
    load_network,
    network_cost,
    train_network,
)
from axdnn.regions.search import SearchSettings, SearchSpace, pareto_front, search_region

TINY_SPACE = SearchSpace(
    depths=(0, 1),
    widths=(2, 8),
    activations=("tanh",),
    weight_formats=("fp32", "fxp:s4.8"),
    act_formats=("fp32",),
)


def tiny(trials=4, **kw):
    return SearchSettings(
        trials=trials,
        samples=512,
        held_out=256,
        test=256,
        timing_batch=512,
        train=TrainSettings(epochs=25, batch_size=64),
        space=TINY_SPACE,
        **kw,
    )


def test_search_finds_a_network_within_the_bound(tmp_path):
    result = search_region(
        "inversek2j", tiny(trials=5, bound=0.5), out_dir=tmp_path, progress=False
    )
    record = result.to_dict()
    assert len(record["trials"]) == 5
    chosen = record["chosen"]
    assert chosen["meets_bound"] and chosen["error"] <= 0.5
    feasible = [t for t in record["trials"] if t["meets_bound"]]
    assert chosen["energy_pj"] == min(t["energy_pj"] for t in feasible)
    assert set(record["pareto"]) <= {t["trial"] for t in record["trials"]}
    assert record["baseline"]["text"].startswith("2->8->2")
    assert record["trials"][0]["text"] == "2->8->2 tanh"  # warm start: the fixed topology
    assert record["comparison"]["energy_reduction"] > 0
    assert chosen["timing"]["speedup"] > 0 and chosen["test_error"] is not None
    net = load_network(tmp_path / "inversek2j.pt")
    pairs = Pairs.sample(net.region, 256, 0, 1)
    assert net.error(pairs) == pytest.approx(chosen["error"], rel=1e-6)
    assert network_cost(net)["energy_pj"] == pytest.approx(chosen["energy_pj"])


def test_search_is_deterministic_and_resumes_from_sqlite(tmp_path):
    db = tmp_path / "s.db"
    first = search_region("fft", tiny(trials=3), storage=db, baseline=False, progress=False)
    again = search_region("fft", tiny(trials=5), storage=db, baseline=False, progress=False)
    assert [t.trial for t in again.trials] == [0, 1, 2, 3, 4]
    assert [t.error for t in again.trials[:3]] == [t.error for t in first.trials]
    fresh = search_region(
        "fft", tiny(trials=3), storage=tmp_path / "other.db", baseline=False, progress=False
    )
    assert [t.to_dict() for t in fresh.trials] == [t.to_dict() for t in first.trials]
    study = optuna.load_study(study_name="regions-fft", storage=f"sqlite:///{db}")
    assert len(study.trials) == 5
    with pytest.raises(RegionError, match="other settings"):
        search_region("fft", tiny(trials=5, bound=0.01), storage=db, progress=False)


def test_pareto_front():
    points = [(0.1, 5.0), (0.2, 1.0), (0.3, 2.0), (0.1, 5.0), (0.05, 9.0)]
    assert pareto_front(points) == [0, 1, 4]


def test_training_is_reproducible_and_formats_cut_energy():
    region = get_region("sobel")
    pairs = Pairs.sample(region, 256, 0, 0)
    a = train_network(region, Topology((4,), "tanh"), pairs, TrainSettings(epochs=2))
    b = train_network(region, Topology((4,), "tanh"), pairs, TrainSettings(epochs=2))
    np.testing.assert_array_equal(a.predict(pairs.x), b.predict(pairs.x))
    q = train_network(
        region, Topology((4,), "tanh", "fxp:s4.4", "fxp:s4.8"), pairs, TrainSettings(epochs=2)
    )
    assert network_cost(q)["macs"] == network_cost(a)["macs"] == 9 * 4 + 4
    assert network_cost(q)["energy_pj"] < network_cost(a)["energy_pj"]


def square_sum(x):
    return (x**2).sum(axis=1)


def _relative(inputs, exact, approx):
    return float(np.mean(np.abs(approx - exact)))


USER = register_region(
    "test_square_sum",
    sampler=lambda n, rng: rng.uniform(-1, 1, (n, 3)),
    metric=_relative,
    in_dim=3,
    out_dim=1,
    bound=0.2,
    baseline=(4,),
)(square_sum)


def make_region():
    return Region("made", square_sum, lambda n, rng: rng.uniform(0, 1, (n, 3)), _relative, 3, 1)


def test_user_regions_by_decorator_and_module_path(tmp_path):
    assert get_region("test_square_sum") is USER
    assert get_region(f"{__name__}:USER") is USER
    assert get_region(f"{__name__}:make_region").name == "made"
    file = tmp_path / "mine.py"
    file.write_text(
        "import numpy as np\nfrom axdnn.regions import Region\n"
        "R = Region('cube', lambda x: x**3, lambda n, rng: rng.uniform(0, 1, (n, 1)),\n"
        "           lambda i, e, a: float(abs(a - e).mean()), 1, 1)\n"
    )
    assert get_region(f"{file}:R").name == "cube"
    result = search_region(USER, tiny(trials=2), out_dir=tmp_path, progress=False)
    assert result.region["name"] == "test_square_sum"
    with pytest.raises(RegionError, match="name it"):
        load_network(_user_checkpoint(tmp_path, result))
    assert load_network(_user_checkpoint(tmp_path, result), USER).region is USER


def _user_checkpoint(tmp_path, result):
    import torch

    data = torch.load(result.checkpoint, weights_only=True)
    data["region"] = "some.module:thing"
    path = tmp_path / "user.pt"
    torch.save(data, path)
    return path


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("nope", "unknown region 'nope'"),
        ("json:nothing", "no attribute"),
        ("not_a_module_xyz:f", "cannot import"),
        ("json:dumps", "build it failed"),
        ("json:__name__", "expected a Region"),
    ],
)
def test_bad_region_specs(spec, needle):
    with pytest.raises(RegionError, match=needle):
        get_region(spec)


def test_bad_settings_and_topologies():
    with pytest.raises(RegionError, match="trials"):
        SearchSettings(trials=0)
    with pytest.raises(RegionError, match="cost"):
        SearchSettings(cost="time")
    with pytest.raises(RegionError, match="activation"):
        Topology((4,), "swish")
    with pytest.raises(Exception, match="fxp:zz"):
        Topology((4,), weight_format="fxp:zz")
    with pytest.raises(RegionError, match="empty"):
        SearchSpace(widths=())
    with pytest.raises(RegionError, match="does not exist"):
        load_network("/nonexistent/net.pt")


def test_latency_as_third_objective_and_macs_cost(tmp_path):
    result = search_region(
        "sobel",
        tiny(trials=2, latency=True, cost="macs"),
        storage=tmp_path / "l.db",
        baseline=False,
        progress=False,
    )
    assert result.objectives == ["error", "macs", "latency"]
    assert all(t.latency_us > 0 for t in result.trials)
    study = optuna.load_study(study_name="regions-sobel", storage=f"sqlite:///{tmp_path / 'l.db'}")
    assert len(study.directions) == 3


WORKER = """
import sys
sys.path.insert(0, {tests!r})
from test_regions_search import tiny
from axdnn.regions.search import search_region
result = search_region("fft", tiny(trials=4), storage={db!r}, baseline=False, progress=False)
print(len(result.trials))
"""


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    db = str(tmp_path / "shared.db")
    search_region("fft", tiny(trials=1), storage=db, baseline=False, progress=False)  # creates it
    code = WORKER.format(tests=str(Path(__file__).parent), db=db)
    workers = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    study = optuna.load_study(study_name="regions-fft", storage=f"sqlite:///{db}")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert 4 <= len(complete) <= 5  # MaxTrialsCallback may let the two race past by one
    assert all(int(out.strip()) >= 4 for out in outputs)
