"""Exact per-input, per-layer accounting of dynamic-effort inference: executed MACs, skipped MACs
and overhead operations (predictor work, comparisons, gathers, interpolation).

Conventions follow `axdnn.cost.counting`: a MAC is one multiply plus its accumulation; a layer's
dense MACs are what `count_ops` gives it. Overhead counts are scalar operations: one predictor op
is one multiply-add of a bound or exit head, one comparison is one compare, one gather is one
element copied to or from a packed buffer, one interpolation op is one add or scale of an
interpolated value. An input that left at an early exit skips every later layer entirely.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from axdnn.cost import CostReport

OVERHEAD_KINDS = ("predictor", "comparisons", "gathers", "interpolation")
"""The overhead categories of every record, in this order."""


@dataclass
class LayerEffort:
    """Totals of one layer over the inputs of a run (per-input means via `per_input`)."""

    name: str
    mechanism: str
    dense_macs: int
    executed_macs: int
    skipped_macs: int
    overhead: dict[str, int] = field(default_factory=dict)
    inputs: int = 0

    @property
    def overhead_ops(self) -> int:
        return int(sum(self.overhead.values()))

    @property
    def skip_rate(self) -> float:
        """Share of this layer's dense MACs that were not executed."""
        return self.skipped_macs / self.dense_macs if self.dense_macs else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["overhead_ops"] = self.overhead_ops
        d["skip_rate"] = self.skip_rate
        return d


@dataclass
class EffortReport:
    """Per-layer totals of a run plus each input's executed, skipped and overhead operations."""

    layers: list[LayerEffort]
    inputs: int
    per_input_executed: list[int]
    per_input_skipped: list[int]
    per_input_overhead: list[int]
    exited_at: list[str]

    @property
    def dense_macs(self) -> int:
        return sum(layer.dense_macs for layer in self.layers)

    @property
    def executed_macs(self) -> int:
        return sum(layer.executed_macs for layer in self.layers)

    @property
    def skipped_macs(self) -> int:
        return sum(layer.skipped_macs for layer in self.layers)

    @property
    def overhead_ops(self) -> int:
        return sum(layer.overhead_ops for layer in self.layers)

    @property
    def ops_ratio(self) -> float:
        """dense / (executed + overhead): how many times fewer operations than dense."""
        done = self.executed_macs + self.overhead_ops
        return self.dense_macs / done if done else float("inf")

    def to_cost_report(self, dense: CostReport) -> CostReport:
        """`dense` (axdnn.cost's count of the same model) with each layer's per-input mean
        skipped MACs filled in, so the energy model prices the dynamic run."""
        layers = []
        for layer in dense.layers:
            owner = next((e for e in self.layers if layer.name == e.name
                          or layer.name.startswith(e.name + ".")), None)  # fmt: skip
            rate = owner.skip_rate if owner is not None else 0.0
            layers.append(replace(layer, skipped_macs=int(round(layer.macs * rate))))
        return replace(dense, layers=layers)

    def exit_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for where in self.exited_at:
            counts[where] = counts.get(where, 0) + 1
        return counts

    def to_dict(self, per_input: bool = False) -> dict[str, Any]:
        """JSON-ready dict; `per_input` adds the three per-input lists (one entry per input)."""
        d: dict[str, Any] = {
            "inputs": self.inputs,
            "dense_macs": self.dense_macs,
            "executed_macs": self.executed_macs,
            "skipped_macs": self.skipped_macs,
            "overhead_ops": self.overhead_ops,
            "ops_ratio": self.ops_ratio,
            "exits": self.exit_counts(),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if per_input:
            d["per_input"] = {
                "executed_macs": self.per_input_executed,
                "skipped_macs": self.per_input_skipped,
                "overhead_ops": self.per_input_overhead,
                "exited_at": self.exited_at,
            }
        return d


class Ledger:
    """Accumulates per-input, per-layer counts during a run; rows are addressed by input index."""

    def __init__(self, inputs: int) -> None:
        self.inputs = inputs
        self._layers: dict[str, dict[str, Any]] = {}
        self.exited_at = ["end"] * inputs

    def layer(self, name: str, mechanism: str, dense_macs: int) -> None:
        """Declare a layer (in execution order) with its per-input dense MACs."""
        if name not in self._layers:
            self._layers[name] = {
                "mechanism": mechanism,
                "dense": int(dense_macs),
                "executed": torch.zeros(self.inputs, dtype=torch.int64),
                "ran": torch.zeros(self.inputs, dtype=torch.bool),
                "overhead": {
                    k: torch.zeros(self.inputs, dtype=torch.int64) for k in OVERHEAD_KINDS
                },
            }

    def add(
        self,
        name: str,
        rows: torch.Tensor,
        executed: torch.Tensor | int,
        **overhead: torch.Tensor | int,
    ) -> None:
        """Add per-row executed MACs and overhead ops of layer `name` for inputs `rows`."""
        entry = self._layers[name]
        entry["executed"].index_add_(0, rows, _per_row(executed, rows))
        entry["ran"][rows] = True
        for kind, value in overhead.items():
            entry["overhead"][kind].index_add_(0, rows, _per_row(value, rows))

    def exited(self, rows: torch.Tensor, where: str) -> None:
        for r in rows.tolist():
            self.exited_at[r] = where

    def report(self) -> EffortReport:
        layers, executed, overhead = [], torch.zeros(self.inputs, dtype=torch.int64), None
        dense = torch.zeros(self.inputs, dtype=torch.int64)
        overhead = torch.zeros(self.inputs, dtype=torch.int64)
        for name, e in self._layers.items():
            ex = e["executed"]
            layers.append(
                LayerEffort(
                    name=name,
                    mechanism=e["mechanism"],
                    dense_macs=e["dense"] * self.inputs,
                    executed_macs=int(ex.sum()),
                    skipped_macs=e["dense"] * self.inputs - int(ex.sum()),
                    overhead={k: int(v.sum()) for k, v in e["overhead"].items()},
                    inputs=int(e["ran"].sum()),
                )
            )
            executed += ex
            dense += e["dense"]
            overhead += sum(e["overhead"].values())
        return EffortReport(
            layers=layers,
            inputs=self.inputs,
            per_input_executed=executed.tolist(),
            per_input_skipped=(dense - executed).tolist(),
            per_input_overhead=overhead.tolist(),
            exited_at=list(self.exited_at),
        )


def _per_row(value: torch.Tensor | int, rows: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(torch.int64).reshape(-1).expand(len(rows))
    return torch.full((len(rows),), int(value), dtype=torch.int64)
