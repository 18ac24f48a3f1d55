"""Wall-clock comparison of the dense model and its dynamic version in the same process: the
same inputs, the same batches, runs interleaved, best of `repeats` (the least disturbed run)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch


@dataclass
class Timing:
    """Seconds per input of both runs at one batch size, and their ratio."""

    batch_size: int
    samples: int
    dense_s_per_input: float
    dynamic_s_per_input: float
    repeats: int
    threads: int

    @property
    def speedup(self) -> float:
        return self.dense_s_per_input / self.dynamic_s_per_input

    def to_dict(self) -> dict:
        return {**asdict(self), "speedup": self.speedup}


def _run(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            fn(x[i : i + batch_size])
    return time.perf_counter() - start


def compare_speed(
    dense: Callable[[torch.Tensor], torch.Tensor],
    dynamic: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    batch_size: int,
    *,
    repeats: int = 3,
) -> Timing:
    """Time `dense` and `dynamic` over all of `x` in batches, interleaved, after one warm-up."""
    _run(dense, x[: batch_size * 2], batch_size)
    _run(dynamic, x[: batch_size * 2], batch_size)
    best_dense = best_dyn = float("inf")
    for _ in range(repeats):
        best_dense = min(best_dense, _run(dense, x, batch_size))
        best_dyn = min(best_dyn, _run(dynamic, x, batch_size))
    n = len(x)
    return Timing(batch_size, n, best_dense / n, best_dyn / n, repeats, torch.get_num_threads())
