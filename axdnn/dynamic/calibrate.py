"""Calibration: fit each layer's mechanism and knobs and each exit's threshold on held-out
training data so that the accuracy drop stays within a budget (in accuracy points), taking the
setting that saves the most operations (executed MACs + overhead) at every step."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from axdnn.dynamic.model import DynamicModel
from axdnn.dynamic.plan import DynamicPlan, LayerSetting
from axdnn.errors import DynamicError

EXIT_THRESHOLDS = (0.999, 0.995, 0.99, 0.98, 0.95, 0.9, 0.8, 0.7)
"""Exit confidence thresholds tried, most cautious first."""


def layer_candidates(mechanisms: tuple[str, ...], kind: str, relu: bool) -> list[LayerSetting]:
    """The settings tried for one layer (conv or linear, with or without ReLU)."""
    out: list[LayerSetting] = []
    if "spet" in mechanisms and relu:
        for fraction, alpha in ((0.5, 1.0), (0.25, 1.0), (0.5, 0.25), (0.25, 0.25)):
            out.append(LayerSetting("spet", fraction=fraction, alpha=alpha, block=1))
    if kind == "conv" and "sdss" in mechanisms:
        out += [LayerSetting("sdss", delta=d) for d in (0.0, 0.2, 0.5)]
    if kind == "conv" and "sfma" in mechanisms:
        out += [LayerSetting("sfma", delta=d) for d in (0.05, 0.2)]
    return out


@dataclass
class Trial:
    """One setting tried on the held-out data."""

    target: str
    setting: dict[str, Any]
    accuracy: float
    ops_ratio: float
    accepted: bool = False


@dataclass
class Calibration:
    """The fitted plan and what it gave on the held-out data."""

    plan: DynamicPlan
    budget: float
    dense_accuracy: float
    accuracy: float
    ops_ratio: float
    samples: int
    trials: list[Trial] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "budget_points": self.budget,
            "dense_accuracy": self.dense_accuracy,
            "accuracy": self.accuracy,
            "drop_points": 100 * (self.dense_accuracy - self.accuracy),
            "ops_ratio": self.ops_ratio,
            "samples": self.samples,
            "trials": [asdict(t) for t in self.trials],
        }


def calibrate(
    model: DynamicModel,
    x: torch.Tensor,
    y: torch.Tensor,
    budget: float,
    *,
    mechanisms: tuple[str, ...] = ("spet", "sdss", "sfma", "exit"),
    layer_share: float = 0.5,
    progress: bool = False,
) -> Calibration:
    """Greedy: layers in order, then exits earliest first. A layer may spend up to
    `layer_share` of the budget (in proportion to its position), exits the rest; each step keeps
    the setting with the fewest operations whose held-out drop is within what it may spend."""
    if budget < 0:
        raise DynamicError(f"budget {budget!r} must be >= 0 accuracy points")
    unknown = set(mechanisms) - {"spet", "sdss", "sfma", "exit"}
    if unknown:
        raise DynamicError(
            f"unknown mechanism(s) {sorted(unknown)}; accepted: spet, sdss, sfma, exit"
        )
    model.set_plan(DynamicPlan())
    dense_acc, report, _ = model.evaluate(x, y)
    state = _State(model, x, y, dense_acc, budget / 100.0)
    state.best = (dense_acc, report.executed_macs + report.overhead_ops)
    layers = [i for i in model.chain if hasattr(i, "kind")]
    steps = [(i.name, layer_candidates(mechanisms, i.kind, i.relu)) for i in layers]
    steps = [s for s in steps if s[1]]
    exits = list(model.heads) if "exit" in mechanisms else []
    total = len(steps) + len(exits)
    with tqdm(total=total, desc="calibrate", disable=not progress, leave=False) as bar:
        for k, (name, candidates) in enumerate(steps):
            allowance = state.allowed * layer_share * (k + 1) / len(steps)
            state.try_all(name, [state.plan.with_layer(name, c) for c in candidates], allowance)
            bar.update()
        for name in exits:
            plans = [state.plan.with_exit(name, t) for t in EXIT_THRESHOLDS]
            state.try_all(f"exit@{name}", plans, state.allowed)
            bar.update()
    model.set_plan(state.plan)
    acc, report, _ = model.evaluate(x, y)
    return Calibration(state.plan, budget, dense_acc, acc, report.ops_ratio, len(y), state.trials)


class _State:
    def __init__(self, model: DynamicModel, x, y, dense_acc: float, allowed: float) -> None:
        self.model, self.x, self.y = model, x, y
        self.dense_acc, self.allowed = dense_acc, allowed
        self.plan = DynamicPlan()
        self.best: tuple[float, int] = (dense_acc, 0)
        self.trials: list[Trial] = []

    def try_all(self, target: str, plans: list[DynamicPlan], allowance: float) -> None:
        """Evaluate each plan; keep the one with the fewest ops within the allowance."""
        chosen, chosen_trial = None, None
        for plan in plans:
            self.model.set_plan(plan)
            acc, report, _ = self.model.evaluate(self.x, self.y)
            ops = report.executed_macs + report.overhead_ops
            setting = _describe(plan, target)
            trial = Trial(target, setting, acc, report.ops_ratio)
            self.trials.append(trial)
            if self.dense_acc - acc <= allowance + 1e-12 and ops < self.best[1]:
                self.best, chosen, chosen_trial = (acc, ops), plan, trial
        if chosen is not None:
            self.plan = chosen
            chosen_trial.accepted = True


def _describe(plan: DynamicPlan, target: str) -> dict[str, Any]:
    if target.startswith("exit@"):
        return {"threshold": plan.exits.get(target[5:])}
    return plan.setting(target).to_dict()
