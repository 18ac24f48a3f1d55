"""Observers: turn calibration data into a quantization range (min/max, percentile, MSE-optimal).

Percentile and MSE observers keep a seeded random subsample of at most `max_samples` values per
channel group, so calibration memory stays bounded whatever the data size.
"""

from __future__ import annotations

import torch

from axdnn.nn.quant import QuantScheme, qparams, quantize_codes

MAX_SAMPLES = 1 << 18
PERCENTILE = 99.99
MSE_GRID = torch.linspace(0.3, 1.0, 36)


class Observer:
    """Accumulates per-tensor or per-channel statistics of the tensors it sees."""

    def __init__(self, scheme: QuantScheme, axis: int = 0, seed: int = 0) -> None:
        self.scheme = scheme
        self.axis = axis
        self.lo: torch.Tensor | None = None
        self.hi: torch.Tensor | None = None
        self.samples: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().float().cpu()
        if self.scheme.per_channel:
            return x.transpose(0, self.axis).reshape(x.shape[self.axis], -1)
        return x.reshape(1, -1)

    def observe(self, x: torch.Tensor) -> None:
        rows = self._rows(x)
        lo, hi = rows.min(dim=1).values, rows.max(dim=1).values
        self.lo = lo if self.lo is None else torch.minimum(self.lo, lo)
        self.hi = hi if self.hi is None else torch.maximum(self.hi, hi)
        if self.scheme.observer != "minmax":
            keep = min(rows.shape[1], MAX_SAMPLES)
            pick = torch.randperm(rows.shape[1], generator=self.generator)[:keep]
            self.samples.append(rows[:, pick])

    def range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (lo, hi) range chosen by this observer's rule."""
        if self.lo is None:
            raise RuntimeError("observer has seen no data")
        if self.scheme.observer == "minmax":
            return self.lo, self.hi
        data = torch.cat(self.samples, dim=1)
        if data.shape[1] > MAX_SAMPLES:
            pick = torch.randperm(data.shape[1], generator=self.generator)[:MAX_SAMPLES]
            data = data[:, pick]
        if self.scheme.observer == "percentile":
            q = torch.tensor([1 - PERCENTILE / 100, PERCENTILE / 100])
            bounds = torch.quantile(data, q, dim=1)
            return bounds[0], bounds[1]
        return _mse_range(data, self.lo, self.hi, self.scheme)

    def qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = self.range()
        return qparams(lo, hi, self.scheme)


def _mse_range(data, lo, hi, scheme):
    """Shrink [lo, hi] by the factor in MSE_GRID that minimises the quantization MSE per row."""
    best_err = torch.full((data.shape[0],), float("inf"))
    best_lo, best_hi = lo.clone(), hi.clone()
    for factor in MSE_GRID:
        cand_lo, cand_hi = lo * factor, hi * factor
        scale, zero = qparams(cand_lo, cand_hi, scheme)
        deq = (quantize_codes(data, scale[:, None], zero[:, None], scheme) - zero[:, None]) * scale[
            :, None
        ]
        err = (deq - data).pow(2).mean(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_lo = torch.where(better, cand_lo, best_lo)
        best_hi = torch.where(better, cand_hi, best_hi)
    return best_lo, best_hi
