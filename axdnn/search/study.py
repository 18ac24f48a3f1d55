"""Explorations as Optuna studies: every evaluated candidate is one trial in an Optuna storage (a
SQLite file, or a PostgreSQL URL shared by several worker processes or machines), so a killed run
resumes where it stopped and workers on one study never evaluate a trial twice.

A study is tied to its space, objectives, strategy and validation subset (stored as the study's
user attribute `axdnn`); opening it with different ones is an error rather than a mixed front.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from tqdm import tqdm

from axdnn.errors import AxError, SearchError
from axdnn.search.objectives import OBJECTIVES, Evaluator, Measure, check_objectives
from axdnn.search.space import BoundSpace

COMPLETE = optuna.trial.TrialState.COMPLETE
_SCHEMA_LOCK = 0x6178_6578_706C  # pg_advisory_lock key of the table creation
HEARTBEAT_S, GRACE_S = 5, 20
"""A worker's running trial beats every HEARTBEAT_S; one silent for GRACE_S (killed) is failed."""


class SearchSettings(BaseModel):
    """How to explore: strategy, evaluation count, objectives, proxies, storage and workers."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field("nsga2", description="greedy, nsga2, tpe or random.")
    trials: int = Field(40, ge=1, description="Evaluations (completed trials) in the study.")
    objectives: list[str] = Field(default_factory=lambda: ["accuracy", "energy"])
    subset: int | None = Field(1000, ge=1, description="Validation images per trial (proxy).")
    population: int = Field(8, ge=2, description="NSGA-II population size.")
    screen: bool = Field(True, description="Greedy: skip multipliers the noise model rejects.")
    confirm: bool = Field(True, description="Re-measure the front on the whole val split.")
    storage: str | None = Field(None, description="SQLite file or database URL.")
    study: str | None = Field(None, description="Study name; default explore-<strategy>.")
    workers: int = Field(1, ge=1, description="Worker processes on the study.")
    memory: Literal["sram", "dram", "none"] = "sram"

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        if value not in STRATEGIES:  # a ValueError: pydantic names the key and the file line
            raise ValueError(f"unknown strategy {value!r}; accepted: {', '.join(STRATEGIES)}")
        return value

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, value: list[str]) -> list[str]:
        try:
            return check_objectives(value)
        except SearchError as err:
            raise ValueError(str(err)) from None

    @classmethod
    def build(cls, **values: Any) -> SearchSettings:
        """Validated settings; a bad value is a SearchError naming the key and what is accepted."""
        try:
            return cls(**values)
        except ValidationError as err:
            first = err.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            raise SearchError(f"explore setting {key}={first.get('input')!r}: {message}") from None

    @property
    def study_name(self) -> str:
        return self.study or f"explore-{self.strategy}"


# --- storage -----------------------------------------------------------------------------------


def storage_url(storage: str | Path) -> str:
    """SQLAlchemy URL of a study storage: a path is a SQLite file, `postgresql://` gets a driver."""
    from axdnn.inject.store import database_url

    try:
        return database_url(storage)
    except AxError as err:
        raise SearchError(str(err).replace("campaign store", "study storage")) from None


@contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """On PostgreSQL, one process at a time creates Optuna's tables (workers start together)."""
    if not url.startswith("postgresql"):
        yield
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _SCHEMA_LOCK})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _SCHEMA_LOCK})
    finally:
        engine.dispose()


def open_storage(storage: str | Path) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats, so a killed worker's running trial is failed later."""
    url = storage_url(storage)
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings(), _schema_lock(url):
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
            )
        except Exception as err:  # noqa: BLE001 - any driver/connection failure
            from axdnn.inject.store import shown_url

            raise SearchError(
                f"cannot open study storage {shown_url(str(storage))!r}: "
                f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            ) from None


# --- trials ------------------------------------------------------------------------------------


@dataclass
class TrialRecord:
    """One evaluated candidate, as stored in its trial."""

    number: int
    params: dict[str, str]
    values: dict[str, float]
    measure: dict
    drop: float
    energy_ratio: float
    feasible: bool
    plan: dict
    confirmed: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def params_key(params: dict[str, str]) -> str:
    """A stable key of a candidate's parameters."""
    return json.dumps(dict(sorted(params.items())))


def feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """All of the trial's constraint values are <= 0."""
    return all(c <= 0 for c in trial.user_attrs["constraint"].values())


@dataclass
class Explorer:
    """One study over a bound space: evaluates candidates as trials and reads the front back."""

    bound: BoundSpace
    evaluator: Evaluator
    settings: SearchSettings
    storage: str | Path
    seed: int = 0
    worker: int = 0
    study: optuna.Study = field(init=False)
    reference_energy: float = field(init=False)
    run_id: str = field(init=False, default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # axdnn shows its own progress
        self.reference_energy = self.evaluator.cost(self._reference_plan()).energy_pj
        self.study = self._open(None)

    def _reference_plan(self):
        from axdnn.nn import LayerSpec, Plan

        ref = self.bound.space.reference
        return Plan(layers={n: LayerSpec(multiplier=ref) for n in self.bound.layers})

    def identity(self) -> dict:
        """What a study is tied to: space, layers, objectives, strategy, subset."""
        s = self.settings
        return {
            "space": self.bound.space.model_dump(mode="json"),
            "layers": self.bound.layers,
            "objectives": s.objectives,
            "strategy": s.strategy,
            "subset": self.evaluator.subset,
            "seed": self.seed,
        }

    def _open(self, sampler: optuna.samplers.BaseSampler | None) -> optuna.Study:
        storage = open_storage(self.storage)
        directions = [OBJECTIVES[o] for o in self.settings.objectives]
        name = self.settings.study_name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(
                storage=storage, study_name=name, directions=directions, sampler=sampler,
                load_if_exists=True,
            )  # fmt: skip
        mine = self.identity()
        digest = hashlib.sha256(json.dumps(mine, sort_keys=True).encode()).hexdigest()[:16]
        stored = study.user_attrs.get("axdnn")
        if stored is None:
            study.set_user_attr("axdnn", {**mine, "digest": digest})
            study.set_user_attr("float_accuracy", self.evaluator.float_accuracy)
            study.set_user_attr("reference_energy_pj", self.reference_energy)
        elif stored.get("digest") != digest:
            differs = [k for k in mine if stored.get(k) != mine[k]]
            raise SearchError(
                f"study {name!r} in {self.storage} was made with a different {', '.join(differs)}; "
                "give another --study name or the same settings"
            )
        return study

    def with_sampler(self, sampler: optuna.samplers.BaseSampler | None) -> optuna.Study:
        self.study = self._open(sampler)
        return self.study

    def completed(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(COMPLETE,))

    def objective(self, trial: optuna.trial.Trial) -> list[float]:
        """Evaluate the trial's candidate; the record goes into its user attributes."""
        params = {k: trial.suggest_categorical(k, v) for k, v in self.bound.params().items()}
        measure = self.evaluator.measure(self.bound.to_plan(params))
        for key, value in self.describe(measure).items():
            trial.set_user_attr(key, value)
        for key, value in trial.user_attrs["constraint"].items():
            trial.set_constraint(key, value)
        trial.set_user_attr("plan", self.bound.to_plan(params).model_dump(mode="json"))
        trial.set_user_attr("worker", self.worker)
        trial.set_user_attr("run", self.run_id)
        return [measure.value(o) for o in self.settings.objectives]

    def describe(self, measure: Measure) -> dict:
        """Measure, drop, energy ratio and constraint values (<= 0 feasible) of a measurement."""
        limits = self.bound.space.constraints
        drop = self.evaluator.float_accuracy - measure.accuracy
        ratio = measure.energy_pj / self.reference_energy
        checks = [
            (limits.max_drop, drop),
            (limits.max_energy_ratio, ratio),
            (limits.max_energy_pj, measure.energy_pj),
            (limits.max_macs, measure.macs),
        ]
        names = ("max_drop", "max_energy_ratio", "max_energy_pj", "max_macs")
        constraint = {n: float(v - lim) for n, (lim, v) in zip(names, checks, strict=True)
                      if lim is not None}  # fmt: skip
        return {"measure": measure.to_dict(), "drop": drop, "energy_ratio": ratio,
                "constraint": constraint}  # fmt: skip

    def records(self) -> list[TrialRecord]:
        """Every completed trial, by number."""
        out = []
        for t in sorted(self.completed(), key=lambda t: t.number):
            attrs = t.user_attrs
            out.append(
                TrialRecord(
                    t.number, dict(t.params),
                    dict(zip(self.settings.objectives, t.values, strict=True)),
                    attrs["measure"], attrs["drop"], attrs["energy_ratio"],
                    feasible(t), attrs["plan"],
                    self.study.user_attrs.get(f"confirmed:{t.number}"),
                )
            )  # fmt: skip
        return out

    def run(self, progress: bool = True) -> int:
        """Run the strategy until the study has `trials` completed trials; returns how many of
        them this process ran (other workers may have run the rest)."""
        before = len(self.completed())
        bar = tqdm(total=self.settings.trials, initial=before, disable=not progress,
                   desc=f"explore {self.settings.strategy}", unit="trial")  # fmt: skip
        try:
            STRATEGIES[self.settings.strategy].drive(self, bar)
        finally:
            bar.close()
        return sum(t.user_attrs.get("run") == self.run_id for t in self.completed())

    def confirm(self, records: list[TrialRecord]) -> list[TrialRecord]:
        """Re-measure records on the whole validation split (stored; done once per trial)."""
        for record in records:
            if record.confirmed is None:
                from axdnn.nn import Plan

                measure = self.evaluator.measure(Plan.from_dict(record.plan), full=True)
                drop = self.evaluator.float_accuracy_full - measure.accuracy
                record.confirmed = {"accuracy": measure.accuracy, "drop": drop,
                                    "samples": measure.samples}  # fmt: skip
                self.study.set_user_attr(f"confirmed:{record.number}", record.confirmed)
        return records


def pareto_front(records: list[TrialRecord], objectives: list[str]) -> list[TrialRecord]:
    """Feasible records that no other feasible record dominates (one per distinct value set)."""
    signs = [1.0 if OBJECTIVES[o] == "minimize" else -1.0 for o in objectives]
    feasible = [r for r in records if r.feasible]
    points = [
        tuple(s * r.values[o] for s, o in zip(signs, objectives, strict=True)) for r in feasible
    ]
    front, seen = [], set()
    for r, p in zip(feasible, points, strict=True):
        dominated = any(all(a <= b for a, b in zip(q, p, strict=True)) and q != p for q in points)
        if not dominated and p not in seen:
            seen.add(p)
            front.append(r)
    return sorted(front, key=lambda r: r.values[objectives[-1]])


# --- strategies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Strategy:
    """A search strategy: `drive(explorer, bar)` adds trials until the study has enough."""

    name: str
    drive: Callable[[Explorer, Any], None]
    description: str = ""
    workers: bool = True


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> Strategy:
    """Add a strategy by name (used by `SearchSettings.strategy`)."""
    STRATEGIES[strategy.name] = strategy
    return strategy


def _sampler_seed(explorer: Explorer) -> int:
    """Seed of a (re)started worker's sampler: a fresh stream per worker and per restart."""
    return explorer.seed + 7919 * explorer.worker + len(explorer.study.get_trials(deepcopy=False))


def sampler_driver(make: Callable[[Explorer, int], optuna.samplers.BaseSampler]):
    """A drive function that lets an Optuna sampler propose candidates."""

    def drive(explorer: Explorer, bar) -> None:
        study = explorer.with_sampler(make(explorer, _sampler_seed(explorer)))
        target = explorer.settings.trials

        def tick(study: optuna.Study, _trial) -> None:
            bar.n = min(len(explorer.completed()), target)
            bar.refresh()

        if len(explorer.completed()) >= target:
            return
        stop = optuna.study.MaxTrialsCallback(target, states=(COMPLETE,))
        study.optimize(explorer.objective, callbacks=[stop, tick], gc_after_trial=False)

    return drive


def _nsga2(explorer: Explorer, seed: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(population_size=explorer.settings.population, seed=seed)


def _tpe(explorer: Explorer, seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True,
            n_startup_trials=min(10, max(2, explorer.settings.trials // 4)),
        )  # fmt: skip


register_strategy(Strategy("nsga2", sampler_driver(_nsga2), "Optuna NSGA-II"))
register_strategy(Strategy("tpe", sampler_driver(_tpe), "Optuna multi-objective TPE"))
register_strategy(
    Strategy("random", sampler_driver(lambda _e, s: optuna.samplers.RandomSampler(seed=s)),
             "uniform random candidates (baseline)")
)  # fmt: skip
