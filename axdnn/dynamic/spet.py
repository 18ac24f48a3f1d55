"""Saturation prediction and early termination (SPET) for conv+ReLU and linear+ReLU layers.

Each output's sum is split at the `fraction` most significant terms (input terms ordered by the
summed magnitude of their weights). Stage 1 computes the partial sum over those terms for every
output; a bound on the remaining terms says which outputs cannot become positive, so ReLU makes
them zero and their remaining terms are skipped. Exact mode uses a sound bound (nothing changes
but floating-point rounding; SnaPEA's exact mode): with ``x >= 0`` the tail can add at most
``min(max(x_tail) * sum(w_tail^+), ||x_tail||_2 * ||w_tail^+||_2)`` (Hoelder), with signed ``x``
the same with ``|w|``. Predictive mode scales the bound by a per-layer ``alpha`` in [0, 1).
Stage 2 runs, for each block of `block` output channels, one dense product over just the rows
(output positions) where some output of the block is still undecided, and scatters it back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from axdnn.dynamic.accounting import Ledger
from axdnn.dynamic.chain import Affine
from axdnn.dynamic.rows import flat_weight, from_rows, per_input, to_rows
from axdnn.errors import DynamicError

CHUNKS = 8
"""The tail is bounded chunk by chunk (consecutive terms in magnitude order): a tighter bound
than one maximum over the whole tail, for `2 * CHUNKS` multiply-adds per output."""

_REL_TOL = 1e-4
"""Exact mode decides an output only when the bound clears zero by this relative margin, so
floating-point rounding of a different summation order can never flip a decision."""


@dataclass(frozen=True)
class SpetKnobs:
    """fraction: share of terms in stage 1; alpha: bound scale (1 = exact); block: output
    channels per stage-2 product."""

    fraction: float = 0.25
    alpha: float = 1.0
    block: int = 4

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise DynamicError(f"SPET fraction {self.fraction!r} must be in (0, 1)")
        if not 0.0 <= self.alpha <= 1.0:
            raise DynamicError(f"SPET alpha {self.alpha!r} must be in [0, 1] (1 = exact)")
        if self.block < 1:
            raise DynamicError(f"SPET block {self.block!r} must be a positive integer")

    @property
    def exact(self) -> bool:
        return self.alpha >= 1.0


class Spet:
    """A conv/linear+ReLU layer run with SPET; `nonneg` says its inputs are never negative."""

    mechanism = "spet"

    def __init__(self, layer: Affine, knobs: SpetKnobs, nonneg: bool) -> None:
        if not layer.relu:
            raise DynamicError(
                f"SPET needs a ReLU after layer {layer.name!r}; it predicts ReLU saturation"
            )
        self.layer, self.knobs, self.nonneg = layer, knobs, nonneg
        w = flat_weight(layer)
        order = w.abs().sum(0).argsort(descending=True)
        k1 = min(w.shape[1] - 1, max(1, math.ceil(knobs.fraction * w.shape[1])))
        self.head, self.tail = order[:k1], order[k1:]
        self.w_head = w[:, self.head].t().contiguous()  # k1 x O
        self.w_tail = w[:, self.tail].contiguous()  # O x (K - k1)
        tail_w = self.w_tail.clamp(min=0) if nonneg else self.w_tail.abs()
        kt = tail_w.shape[1]
        self.chunk_size = math.ceil(kt / min(CHUNKS, kt))
        self.chunks = math.ceil(kt / self.chunk_size)
        self.chunk_of = torch.arange(kt) // self.chunk_size  # tail term -> chunk
        sums = torch.zeros(self.chunks, tail_w.shape[0]).index_add_(0, self.chunk_of, tail_w.t())
        squares = torch.zeros(self.chunks, tail_w.shape[0])
        squares.index_add_(0, self.chunk_of, tail_w.t() ** 2)
        self.a1, self.a2 = sums, squares.sqrt()  # chunks x O
        out = w.shape[0]
        self.blocks = [slice(s, min(s + knobs.block, out)) for s in range(0, out, knobs.block)]

    @property
    def name(self) -> str:
        return self.layer.name

    def __call__(self, x: torch.Tensor, ledger: Ledger | None, rows_idx: torch.Tensor):
        rows, positions = to_rows(self.layer, x)
        y, cost = self.run_rows(rows)
        if ledger is not None:
            ledger.add(
                self.name,
                rows_idx,
                per_input(cost["executed"], positions),
                **{k: per_input(v, positions) for k, v in cost.items() if k != "executed"},
            )
        return from_rows(self.layer, torch.relu(y), x)

    def run_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """SPET on (R x K) rows: pre-activation outputs (R x O) with decided ones set to zero,
        and per-row counts (executed MACs and each overhead kind)."""
        r, out = rows.shape[0], self.w_head.shape[1]
        k1, kt = len(self.head), len(self.tail)
        partial = torch.addmm(self.layer.bias, rows[:, self.head], self.w_head)
        tail = rows[:, self.tail]
        undecided, bound_ops = self._undecided(partial, tail)
        executed = torch.full((r,), k1 * out, dtype=torch.int64)
        gathers = torch.full((r,), k1 + kt, dtype=torch.int64)
        computed = torch.zeros_like(undecided)
        for block in self.blocks:
            need = undecided[:, block].any(1)
            active = need.nonzero().squeeze(1)
            if active.numel() == 0:
                continue
            width = block.stop - block.start
            partial[active, block] += tail[active] @ self.w_tail[block].t()
            computed[:, block] = need.unsqueeze(1)
            executed[active] += kt * width
            gathers[active] += kt + width
        partial = partial.masked_fill(~computed, 0.0)
        cost = {"executed": executed, "gathers": gathers, **bound_ops}
        return partial, cost

    def _undecided(self, partial: torch.Tensor, tail: torch.Tensor):
        """Which outputs may still end positive, and the per-row bound overhead."""
        r, out, kt = partial.shape[0], partial.shape[1], tail.shape[1]
        alpha = self.knobs.alpha
        if alpha == 0.0:
            ops = {"comparisons": torch.full((r,), out, dtype=torch.int64)}
            return partial > 0, ops
        mag = tail if self.nonneg else tail.abs()
        mag = F.pad(mag, (0, self.chunks * self.chunk_size - kt)).reshape(r, self.chunks, -1)
        bound = torch.minimum(mag.amax(2) @ self.a1, mag.norm(dim=2) @ self.a2)
        if self.knobs.exact:
            margin = _REL_TOL * (partial.abs() + bound) + 1e-6
            undecided = partial + bound + margin > 0
        else:
            undecided = partial + alpha * bound > 0
        ops = {
            "predictor": torch.full((r,), kt + (2 * self.chunks + 1) * out, dtype=torch.int64),
            "comparisons": torch.full((r,), kt + 2 * out, dtype=torch.int64),
        }
        return undecided, ops
