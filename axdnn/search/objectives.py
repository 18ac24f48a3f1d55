"""Objectives of a candidate plan: top-1 accuracy on a validation split (real table simulation,
on a subset while searching and on the whole split to confirm), and energy, effective MACs and
weight memory from the cost model (`axdnn.cost`).

Accuracy is measured exactly as `axdnn evaluate --plan` does: `approximate(model, plan,
calibration, seed=seed)` with the training split as calibration data, top-1 over the split, so a
saved plan reproduces its recorded accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from axdnn.analysis.accuracy import tensor_accuracy
from axdnn.cost import count_ops, estimate_energy, precision_from_model
from axdnn.errors import SearchError
from axdnn.nn import Plan, approximate

OBJECTIVES: dict[str, str] = {
    "accuracy": "maximize",
    "energy": "minimize",
    "macs": "minimize",
    "weight_memory": "minimize",
}
"""Objective name -> Optuna direction; values come from `Measure` fields of the same meaning."""


def check_objectives(names: list[str]) -> list[str]:
    """Known, distinct objective names (at least one)."""
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names or len(set(names)) != len(names):
        raise SearchError(
            f"objectives {names!r} invalid: give distinct names from {', '.join(OBJECTIVES)}"
        )
    return list(names)


@dataclass(frozen=True)
class Cost:
    """Cost-model figures of one plan, per sample."""

    energy_pj: float
    macs: int
    weight_bits: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Measure(Cost):
    """Every objective value of one plan: its cost, and top-1 over `samples` val images."""

    accuracy: float
    samples: int

    def value(self, objective: str) -> float:
        """The figure an objective optimises."""
        key = {"energy": "energy_pj", "weight_memory": "weight_bits"}.get(objective, objective)
        return float(getattr(self, key))


class Evaluator:
    """Measures candidate plans of one float model: accuracy on (a subset of) the validation
    split, cost from the cost model with operations counted once."""

    def __init__(
        self,
        model: nn.Module,
        calibration,
        val: tuple[torch.Tensor, torch.Tensor],
        input_shape: tuple[int, ...],
        *,
        subset: int | None = None,
        seed: int = 0,
        memory: str = "sram",
    ) -> None:
        self.model = model.eval()
        self.calibration, self.seed, self.memory = calibration, seed, memory
        self.inputs, self.labels = val
        if len(self.labels) == 0:
            raise SearchError("the validation split is empty; exploration needs validation data")
        self.subset = min(subset or len(self.labels), len(self.labels))
        self.input_shape = tuple(input_shape)
        self.ops = count_ops(model, self.input_shape)
        self.float_accuracy = self._accuracy(model, full=False)
        self.float_accuracy_full = self._accuracy(model, full=True)

    def _accuracy(self, model: nn.Module, full: bool) -> float:
        n = len(self.labels) if full else self.subset
        return tensor_accuracy(model, self.inputs[:n], self.labels[:n])

    def cost(self, plan: Plan) -> Cost:
        """Energy (pJ), effective MACs and weight bits per sample under the plan."""
        hardware = approximate(self.model, plan, None, input_shape=self.input_shape)
        report = estimate_energy(self.ops, precision_from_model(hardware), memory=self.memory)
        return Cost(
            energy_pj=report.total_pj,
            macs=sum(layer.effective_macs for layer in report.layers),
            weight_bits=sum(layer.weight_bits_moved for layer in report.layers),
        )

    def accuracy(self, plan: Plan, full: bool = False) -> float:
        """Top-1 under real table simulation of the plan (subset, or the whole split)."""
        approx = approximate(self.model, plan, self.calibration, seed=self.seed)
        return self._accuracy(approx, full)

    def measure(self, plan: Plan, full: bool = False) -> Measure:
        """Accuracy and cost of one plan."""
        cost = self.cost(plan)
        samples = len(self.labels) if full else self.subset
        return Measure(**cost.to_dict(), accuracy=self.accuracy(plan, full), samples=samples)
