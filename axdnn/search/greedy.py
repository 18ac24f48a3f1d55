"""Resilience-guided greedy search (cheap): units in order of resilience (least sensitive first,
from `axdnn.analysis.sensitivity_sweep`), each moved to the cheapest option (by the cost model)
that keeps the candidate feasible, found by bisection over its options in energy order;
multiplier options the component noise model already predicts
out of budget (`axdnn.analysis.NoiseLibrary`, ReD-CaNe) are skipped without a table simulation.

Every table simulation is one trial; the walk is deterministic, so a rerun replays the stored
trials (no new evaluation) and continues with the first candidate the study lacks.
"""

from __future__ import annotations

import hashlib

import optuna

from axdnn.analysis import NoiseLibrary, sensitivity_sweep
from axdnn.errors import SearchError
from axdnn.search.study import Explorer, Strategy, feasible, params_key, register_strategy

SENSITIVITY_SAMPLES = 500
SCREEN_CALIBRATION = 256


class GreedyWalk:
    """State of one greedy walk over an explorer's study."""

    def __init__(self, explorer: Explorer, bar) -> None:
        self.ex, self.bar = explorer, bar
        self.study = explorer.with_sampler(optuna.samplers.RandomSampler(seed=explorer.seed))
        self.energy_cache: dict[str, float] = {}
        self._noise: NoiseLibrary | None | bool = False  # False: not built yet
        self.screened = 0

    # -- cheap figures ------------------------------------------------------------------------
    def energy(self, params: dict[str, str]) -> float:
        key = params_key(params)
        if key not in self.energy_cache:
            plan = self.ex.bound.to_plan(params)
            self.energy_cache[key] = self.ex.evaluator.cost(plan).energy_pj
        return self.energy_cache[key]

    def unit_order(self) -> list:
        """Units least sensitive first (a unit's score: its most sensitive layer's); computed
        once per study and stored with it, so a rerun walks the same way."""
        units = {u.name: u for u in self.ex.bound.units}
        stored = self.study.user_attrs.get("greedy:order")
        if stored is None:
            stored = [u.name for u in self._sensitivity_order()]
            self.study.set_user_attr("greedy:order", stored)
        return [units[name] for name in stored]

    def _sensitivity_order(self) -> list:
        ev, units = self.ex.evaluator, self.ex.bound.units
        n = min(SENSITIVITY_SAMPLES, ev.subset)
        layers = [layer for u in units for layer in u.layers]
        sweep = sensitivity_sweep(ev.model, ev.inputs[:n], ev.labels[:n], layers, repeats=1,
                                  seed=self.ex.seed, bootstrap=20)  # fmt: skip
        score = {r["site"].split(":")[0]: r["score"] for r in sweep.ranking}
        return sorted(units, key=lambda u: (max(score.get(n, 0.0) for n in u.layers), u.name))

    def _multiplier_specs(self) -> list[str]:
        specs = []
        for unit in self.ex.bound.units:
            for opts in unit.axes.values():
                specs += [dict(o.fields)["multiplier"] for o in opts if _multiplier_of(o)]
        return list(dict.fromkeys(specs))

    def _noise_library(self) -> NoiseLibrary | None:
        specs = self._multiplier_specs()
        calibration = getattr(self.ex.evaluator.calibration, "tensors", None)
        if not specs or calibration is None:
            return None
        x = calibration[0][:SCREEN_CALIBRATION]
        return NoiseLibrary(self.ex.evaluator.model, specs, x, seed=self.ex.seed)

    @property
    def noise(self) -> NoiseLibrary | None:
        """The component noise models of the space's multipliers, built on first use."""
        if self._noise is False:
            self._noise = self._noise_library() if self.ex.settings.screen else None
        return self._noise

    def rejected_by_noise(self, params: dict[str, str]) -> bool:
        """The noise model predicts the candidate's multipliers alone break the drop budget
        (each verdict is stored with the study, so a rerun needs no noise model for it)."""
        key = "greedy:screen:" + hashlib.sha256(params_key(params).encode()).hexdigest()[:20]
        if key not in self.study.user_attrs:
            self.study.set_user_attr(key, self._predict_rejects(params))
        return bool(self.study.user_attrs[key])

    def _predict_rejects(self, params: dict[str, str]) -> bool:
        budget = self.ex.bound.space.constraints.max_drop
        if not self.ex.settings.screen or budget is None or self.noise is None:
            return False
        choice = {}
        for unit in self.ex.bound.units:
            for axis, opts in unit.axes.items():
                option = next(o for o in opts if o.label == params[f"{unit.name}:{axis}"])
                spec = dict(option.fields).get("multiplier") if _multiplier_of(option) else None
                choice.update(dict.fromkeys(unit.layers, spec))
        ev = self.ex.evaluator
        pred, _low, high = self.noise.predict(
            choice, ev.inputs[: ev.subset], ev.labels[: ev.subset], repeats=1, seed=self.ex.seed
        )
        return ev.float_accuracy - high > budget

    # -- evaluations ---------------------------------------------------------------------------
    def stored(self) -> dict[str, optuna.trial.FrozenTrial]:
        return {params_key(t.params): t for t in self.ex.completed()}

    def full(self) -> bool:
        return len(self.ex.completed()) >= self.ex.settings.trials

    def feasible(self, params: dict[str, str]) -> bool | None:
        """Evaluate (or read back) a candidate; None when the evaluation budget is spent."""
        trial = self.stored().get(params_key(params))
        if trial is None:
            if self.full():
                return None
            self.study.enqueue_trial(params)
            self.study.optimize(self.ex.objective, n_trials=1, gc_after_trial=False)
            trial = self.stored().get(params_key(params))
            self.bar.n = min(len(self.ex.completed()), self.ex.settings.trials)
            self.bar.refresh()
        return trial is not None and feasible(trial)

    def start(self) -> dict[str, str]:
        """Every decision at the reference multiplier where offered, else its dearest option."""
        ref = self.ex.bound.space.reference
        params = {}
        for key, labels in self.ex.bound.params().items():
            params[key] = labels[0]
        for key, labels in self.ex.bound.params().items():
            if ref in labels:
                params[key] = ref
            else:
                params[key] = max(labels, key=lambda lbl: self.energy({**params, key: lbl}))
        return params

    def walk(self) -> None:
        current = self.start()
        if self.feasible(current) is None:
            return
        for unit in self.unit_order():
            for axis in unit.axes:
                step = self.cheapest(current, f"{unit.name}:{axis}")
                if step is None:
                    return
                current = step

    def cheapest(self, current: dict[str, str], key: str) -> dict[str, str] | None:
        """The cheapest feasible value of one decision, by bisection over its cheaper options
        in energy order (accuracy taken as falling with energy): about log2(options)
        evaluations per decision. None when the evaluation budget runs out."""
        base = self.energy(current)
        cheaper = sorted(
            (
                lbl
                for lbl in self.ex.bound.params()[key]
                if self.energy({**current, key: lbl}) < base
            ),
            key=lambda lbl: (self.energy({**current, key: lbl}), lbl),
        )
        lo, hi = 0, len(cheaper)  # cheaper[hi:] + current: feasible; cheaper[:lo]: not
        while lo < hi:
            mid = (lo + hi) // 2
            candidate = {**current, key: cheaper[mid]}
            ok = self.check(candidate)
            if ok is None:
                return None
            lo, hi = (lo, mid) if ok else (mid + 1, hi)
        return {**current, key: cheaper[hi]} if hi < len(cheaper) else current

    def check(self, candidate: dict[str, str]) -> bool | None:
        """Feasible? The noise screen first (no table simulation), then a trial."""
        known = params_key(candidate) in self.stored()
        if not known and self.rejected_by_noise(candidate):
            self.screened += 1
            return False
        return self.feasible(candidate)


def _multiplier_of(option) -> bool:
    return dict(option.fields).get("multiplier") is not None


def _drive(explorer: Explorer, bar) -> None:
    if explorer.settings.workers > 1:
        raise SearchError("the greedy strategy is one sequential walk: run it with --workers 1")
    GreedyWalk(explorer, bar).walk()


register_strategy(
    Strategy("greedy", _drive, "resilience-guided greedy with a noise-model screen", False)
)
