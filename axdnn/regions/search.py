"""Architecture search for a region (best-effort approximation, Chen et al., DATE 2020): Optuna
multi-objective search over MLPs (depth, widths, activation, weight and activation formats),
each candidate trained on sampled pairs and scored on held-out pairs, error against cost (energy
or MACs from the cost model; optionally measured latency too), the quality bound a constraint.

Trials live in an Optuna storage: a SQLite file by default, any Optuna storage URL otherwise.
A rerun (or another process on the same storage and study) resumes the study and adds trials
until `trials` are complete; the settings are stored with the study and a rerun with different
settings is refused. A new study's first trial is the region's fixed topology in float32
(`warm_start`). The chosen network is the cheapest trial within the bound; its training
seed depends only on the run seed and its topology, so it is trained again bit for bit, scored
on a third, untouched sample and timed against the numpy region. The baseline is the region's
fixed topology (Esmaeilzadeh et al., MICRO 2012), trained the same way in float32 with the best
of the activations on the held-out pairs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
from tqdm.auto import tqdm

from axdnn.errors import RegionError
from axdnn.regions.mlp import (
    ACTIVATIONS,
    Network,
    Pairs,
    Topology,
    TrainSettings,
    measure_speedup,
    network_cost,
    save_network,
    train_network,
)
from axdnn.regions.region import Region, get_region

COSTS = ("energy", "macs")
STREAMS = {"train": 0, "held_out": 1, "test": 2, "timing": 3}


@dataclass(frozen=True)
class SearchSpace:
    """What a candidate may be: hidden-layer counts, widths per layer, activations and formats
    (axdnn.formats specs; 'fp32' is plain float)."""

    depths: tuple[int, ...] = (0, 1, 2, 3)
    widths: tuple[int, ...] = (2, 4, 8, 16, 32)
    activations: tuple[str, ...] = ("sigmoid", "tanh", "relu")
    weight_formats: tuple[str, ...] = ("fp32", "fp16", "fxp:s4.8", "fxp:s4.4")
    act_formats: tuple[str, ...] = ("fp32", "fp16", "fxp:s4.8")

    def __post_init__(self) -> None:
        for key in asdict(self):
            values = tuple(getattr(self, key))
            object.__setattr__(self, key, values)
            if not values:
                raise RegionError(f"search space {key} is empty; give at least one choice")
        if min(self.depths) < 0 or min(self.widths) < 1:
            raise RegionError(
                f"search space depths {list(self.depths)} must be >= 0 and widths "
                f"{list(self.widths)} >= 1"
            )
        for act in self.activations:
            Topology((), act)
        for spec in (*self.weight_formats, *self.act_formats):
            Topology((), weight_format=spec)

    def suggest(self, trial: optuna.Trial) -> Topology:
        """The trial's topology (widths are conditional on the depth)."""
        depth = trial.suggest_categorical("depth", list(self.depths))
        hidden = tuple(
            trial.suggest_categorical(f"width{i}", list(self.widths)) for i in range(depth)
        )
        return Topology(
            hidden,
            trial.suggest_categorical("activation", list(self.activations)),
            trial.suggest_categorical("weight_format", list(self.weight_formats)),
            trial.suggest_categorical("act_format", list(self.act_formats)),
        )

    def to_dict(self) -> dict[str, list]:
        return {k: list(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class SearchSettings:
    """Budget and objectives of one region's search; everything but `trials` is stored with the
    study and must match on resume."""

    trials: int = 30
    samples: int = 4096
    held_out: int = 2048
    test: int = 4096
    bound: float | None = None
    cost: Literal["energy", "macs"] = "energy"
    latency: bool = False
    timing_batch: int = 16384
    seed: int = 0
    warm_start: bool = True
    train: TrainSettings = field(default_factory=TrainSettings)
    space: SearchSpace = field(default_factory=SearchSpace)

    def __post_init__(self) -> None:
        for key in ("trials", "samples", "held_out", "test", "timing_batch"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RegionError(f"search setting {key}={value!r} must be an int >= 1")
        if self.cost not in COSTS:
            raise RegionError(f"search cost {self.cost!r} unknown; choose one of {COSTS}")
        if self.bound is not None and not self.bound > 0:
            raise RegionError(f"quality bound {self.bound!r} must be > 0")

    def fingerprint(self, region: Region) -> dict[str, Any]:
        """What a stored study must have been run with to be resumed."""
        data = asdict(self)
        data.pop("trials")
        data.pop("timing_batch")
        data["space"] = self.space.to_dict()
        return {"region": region.name, "bound": self.bound_for(region), **data}

    def bound_for(self, region: Region) -> float:
        return region.bound if self.bound is None else float(self.bound)


@dataclass
class Candidate:
    """One trained network's figures: topology, errors, cost and optional timing."""

    topology: dict[str, Any]
    text: str
    error: float
    meets_bound: bool
    macs: int
    params: int
    energy_pj: float
    test_error: float | None = None
    test_meets_bound: bool | None = None
    trial: int | None = None
    latency_us: float | None = None
    speedup_vs_region: float | None = None
    timing: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RegionSearchResult:
    """Everything one region's search produced: trials, Pareto front, chosen network, baseline."""

    region: dict[str, Any]
    bound: float
    cost: str
    objectives: list[str]
    storage: str
    study: str
    trials: list[Candidate]
    pareto: list[int]
    chosen: Candidate
    baseline: Candidate | None
    checkpoint: str | None
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["comparison"] = self.comparison()
        return data

    def comparison(self) -> dict[str, Any] | None:
        """Chosen network against the baseline: energy and MAC reduction, measured speed-up."""
        base, chosen = self.baseline, self.chosen
        if base is None:
            return None
        t_base = (base.timing or {}).get("network_s")
        t_chosen = (chosen.timing or {}).get("network_s")
        win = bool(chosen.test_meets_bound) and _cost(chosen, self.cost) < _cost(base, self.cost)
        return {
            "energy_reduction": base.energy_pj / chosen.energy_pj,
            "mac_reduction": base.macs / chosen.macs if chosen.macs else None,
            "speedup": t_base / t_chosen if t_base and t_chosen else None,
            "baseline_meets_bound": bool(base.test_meets_bound),
            "win": win,
        }


def _cost(candidate: Candidate, cost: str) -> float:
    return candidate.energy_pj if cost == "energy" else float(candidate.macs)


def settings_study_name(region: Region, settings: SearchSettings) -> str:
    """`regions-<name>-<hash of the settings>`: a study name that changes with the settings, so
    that more trials resume the study and other settings start a new one."""
    text = json.dumps(settings.fingerprint(region), sort_keys=True, default=str)
    return f"regions-{region.name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def storage_url(storage: str | Path | None, out_dir: Path | None) -> str:
    """An Optuna storage URL: a URL as given, a file path as SQLite, default regions.db in
    out_dir (or the working directory)."""
    if storage is None:
        storage = (Path(out_dir) if out_dir else Path(".")) / "regions.db"
    text = str(storage)
    if "://" in text:
        return text
    path = Path(text).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_study(
    region: Region, settings: SearchSettings, storage: str, study_name: str
) -> optuna.Study:
    """Create or resume the study; refuse one stored with other settings."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = ["minimize"] * len(objective_names(settings))
    sampler = optuna.samplers.TPESampler(
        seed=settings.seed, n_startup_trials=max(2, min(10, settings.trials // 3))
    )
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            directions=directions,
            sampler=sampler,
            load_if_exists=True,
        )
    except (ValueError, ImportError, optuna.exceptions.StorageInternalError) as err:
        raise RegionError(f"search storage {storage!r} cannot be opened ({err})") from None
    _check_fingerprint(study, settings.fingerprint(region), study_name, storage)
    return study


def _check_fingerprint(study: optuna.Study, wanted: dict, name: str, storage: str) -> None:
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", wanted)
        return
    if stored != wanted:
        diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        raise RegionError(
            f"study {name!r} in {storage!r} was run with other settings ({', '.join(diff)} "
            "differ); use the same settings to resume it, or another study name or storage"
        )


def warm_start(study: optuna.Study, region: Region, space: SearchSpace) -> bool:
    """Queue the region's fixed topology (float32, tanh when offered) as a new study's first
    trial, when the space can express it; True when queued."""
    hidden = region.baseline or ()
    fits = len(hidden) in space.depths and all(w in space.widths for w in hidden)
    if study.trials or region.baseline is None or not fits:
        return False
    activation = "tanh" if "tanh" in space.activations else space.activations[0]
    params = {"depth": len(hidden), **{f"width{i}": w for i, w in enumerate(hidden)}}
    params |= {"activation": activation}
    for key in ("weight_formats", "act_formats"):
        choices = getattr(space, key)
        params[key[:-1]] = "fp32" if "fp32" in choices else choices[0]
    study.enqueue_trial(params)
    return True


def objective_names(settings: SearchSettings) -> list[str]:
    """The minimised objectives: error, cost, and measured latency when asked for."""
    return ["error", settings.cost] + (["latency"] if settings.latency else [])


@dataclass
class _Data:
    train: Pairs
    held_out: Pairs
    test: Pairs

    @classmethod
    def sample(cls, region: Region, settings: SearchSettings) -> _Data:
        s = settings
        return cls(
            Pairs.sample(region, s.samples, s.seed, STREAMS["train"]),
            Pairs.sample(region, s.held_out, s.seed, STREAMS["held_out"]),
            Pairs.sample(region, s.test, s.seed, STREAMS["test"]),
        )


def candidate(network: Network, data: Pairs, bound: float, *, trial: int | None = None):
    """Score and cost one trained network on held-out pairs."""
    cost = network_cost(network)
    error = network.error(data)
    return Candidate(
        topology=network.topology.to_dict(),
        text=network.topology.text(network.region),
        error=error,
        meets_bound=error <= bound,
        macs=cost["macs"],
        params=cost["params"],
        energy_pj=cost["energy_pj"],
        trial=trial,
    )


class _Objective:
    """Train and score one trial's topology (a topology already in the study is not retrained)."""

    def __init__(self, region: Region, settings: SearchSettings, data: _Data, study) -> None:
        self.region, self.settings, self.data = region, settings, data
        self.bound = settings.bound_for(region)
        self.seen = {
            t.user_attrs["key"]: t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if "key" in t.user_attrs
        }

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        topology = self.settings.space.suggest(trial)
        key = topology.key()
        trial.set_user_attr("key", key)
        if key in self.seen:
            old = self.seen[key]
            trial.set_user_attr("record", old.user_attrs["record"])
            trial.set_constraint(
                "error_above_bound", old.user_attrs["record"]["error"] - self.bound
            )
            return tuple(old.values)
        network = train_network(
            self.region, topology, self.data.train, self.settings.train, seed=self.settings.seed
        )
        found = candidate(network, self.data.held_out, self.bound, trial=trial.number)
        values = [found.error, _cost(found, self.settings.cost)]
        if self.settings.latency:
            timing = measure_speedup(network, self.data.held_out.x, repeats=3)
            found.latency_us = timing["network_us_per_sample"]
            values.append(found.latency_us)
        trial.set_user_attr("record", found.to_dict())
        trial.set_constraint("error_above_bound", found.error - self.bound)
        return tuple(values)


def run_trials(study: optuna.Study, objective: _Objective, total: int, progress: bool) -> None:
    """Add trials until `total` are complete in the study (counting other workers' trials)."""
    complete = (optuna.trial.TrialState.COMPLETE,)
    done = len(study.get_trials(deepcopy=False, states=complete))
    if done >= total:
        return
    bar = tqdm(
        total=total,
        initial=done,
        desc=f"search {objective.region.name}",
        disable=not progress,
        leave=False,
    )

    def tick(study_, trial_) -> None:
        bar.n = len(study_.get_trials(deepcopy=False, states=complete))
        bar.refresh()

    stop = optuna.study.MaxTrialsCallback(total, states=complete)
    try:
        study.optimize(objective, n_trials=total - done, callbacks=[stop, tick])
    finally:
        bar.close()


def trial_records(study: optuna.Study, settings: SearchSettings) -> list[Candidate]:
    """The complete trials' candidates, in trial order (duplicates carry their own number)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        record = dict(t.user_attrs["record"])
        record["trial"] = t.number
        if settings.latency and len(t.values) > 2:
            record["latency_us"] = t.values[2]
        out.append(Candidate(**record))
    return out


def pareto_front(points: list[tuple[float, ...]]) -> list[int]:
    """Indices of the non-dominated points (all objectives minimised), first occurrence of
    equal points only, in input order."""
    front = []
    for i, p in enumerate(points):
        dominated = any(
            all(a <= b for a, b in zip(q, p, strict=True)) and (q != p or j < i)
            for j, q in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def choose(trials: list[Candidate], cost: str) -> Candidate:
    """The cheapest candidate within the bound (then the lower error); with none within the
    bound, the lowest error."""
    feasible = [t for t in trials if t.meets_bound]
    if feasible:
        return min(feasible, key=lambda t: (_cost(t, cost), t.error, t.trial or 0))
    return min(trials, key=lambda t: (t.error, _cost(t, cost), t.trial or 0))


def finish(network: Network, found: Candidate, data: _Data, settings: SearchSettings, *, bound):
    """Score on the untouched test pairs and time against the numpy region."""
    found.test_error = network.error(data.test)
    found.test_meets_bound = found.test_error <= bound
    rng = np.random.default_rng([settings.seed, STREAMS["timing"]])
    timing_x = network.region.sample(settings.timing_batch, rng)
    found.timing = measure_speedup(network, timing_x)
    found.speedup_vs_region = found.timing["speedup"]
    found.latency_us = found.timing["network_us_per_sample"]
    return found


def train_baseline(
    region: Region, settings: SearchSettings, data: _Data
) -> tuple[Network, Candidate]:
    """The fixed topology in float32, best activation on the held-out pairs."""
    if region.baseline is None:
        raise RegionError(f"region {region.name!r} has no baseline topology")
    bound = settings.bound_for(region)
    best = None
    for activation in ACTIVATIONS:
        network = train_network(
            region,
            Topology(region.baseline, activation),
            data.train,
            settings.train,
            seed=settings.seed,
        )
        found = candidate(network, data.held_out, bound)
        if best is None or found.error < best[1].error:
            best = (network, found)
    return best  # type: ignore[return-value]


def search_region(
    region: Region | str,
    settings: SearchSettings | None = None,
    *,
    storage: str | Path | None = None,
    study_name: str | None = None,
    out_dir: Path | None = None,
    baseline: bool = True,
    progress: bool = True,
) -> RegionSearchResult:
    """Search the cheapest MLP within the region's quality bound; write the chosen network to
    out_dir/<region>.pt when out_dir is given."""
    region = get_region(region)
    settings = SearchSettings() if settings is None else settings
    bound = settings.bound_for(region)
    url = storage_url(storage, out_dir)
    name = study_name or f"regions-{region.name}"
    study = open_study(region, settings, url, name)
    if settings.warm_start:
        warm_start(study, region, settings.space)
    data = _Data.sample(region, settings)
    run_trials(study, _Objective(region, settings, data, study), settings.trials, progress)
    trials = trial_records(study, settings)
    points = [
        (t.error, _cost(t, settings.cost)) + ((t.latency_us,) if settings.latency else ())
        for t in trials
    ]
    pareto = [trials[i].trial for i in pareto_front(points)]
    picked = choose(trials, settings.cost)
    topology = Topology.from_dict(picked.topology)
    network = train_network(region, topology, data.train, settings.train, seed=settings.seed)
    chosen = finish(
        network,
        candidate(network, data.held_out, bound, trial=picked.trial),
        data,
        settings,
        bound=bound,
    )
    checkpoint = None
    if out_dir is not None:
        network.info = {"search": chosen.to_dict(), "bound": bound, "study": name}
        checkpoint = str(save_network(network, Path(out_dir) / f"{region.name}.pt"))
    base = None
    if baseline and region.baseline is not None:
        base_net, base = train_baseline(region, settings, data)
        finish(base_net, base, data, settings, bound=bound)
    return RegionSearchResult(
        region=region.to_dict(),
        bound=bound,
        cost=settings.cost,
        objectives=objective_names(settings),
        storage=url,
        study=name,
        trials=trials,
        pareto=pareto,
        chosen=chosen,
        baseline=base,
        checkpoint=checkpoint,
        settings={**settings.fingerprint(region), "trials": settings.trials},
    )
