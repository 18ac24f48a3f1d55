"""Similarity-based feature-map approximation (SFMA, DyVEDeep) for a conv layer: per input,
input channels whose maps are similar (relative L1 distance of 4x4 average-pooled signatures at
most `delta`) are grouped; each group's first map stands for all of them and is convolved once
with the group's summed kernels, so the conv runs on fewer input channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from axdnn.dynamic.accounting import Ledger
from axdnn.dynamic.chain import Affine

SIGNATURE = 4
"""Side of the average-pooled signature each map is compared by."""


class Sfma:
    """A conv(+ReLU) layer run with SFMA at tolerance `delta`."""

    mechanism = "sfma"

    def __init__(self, layer: Affine, delta: float) -> None:
        self.layer, self.delta, self.name = layer, float(delta), layer.name

    def __call__(self, x: torch.Tensor, ledger: Ledger | None, rows_idx: torch.Tensor):
        lay = self.layer
        outs, executed, overhead = [], [], []
        for i in range(x.shape[0]):
            reps, groups = self.groups(x[i])
            weight = torch.stack([lay.weight[:, g].sum(1) for g in groups], 1)
            outs.append(
                F.conv2d(
                    x[i : i + 1, reps], weight, lay.bias, lay.stride, lay.padding, lay.dilation
                )
            )
            executed.append(len(reps))
            overhead.append(sum(len(g) - 1 for g in groups))
        y = torch.cat(outs)
        if ledger is not None:
            self._account(ledger, rows_idx, x, y, executed, overhead)
        return torch.relu(y) if lay.relu else y

    def groups(self, maps: torch.Tensor) -> tuple[list[int], list[list[int]]]:
        """Representative channel of each group and the groups (channel lists), greedily."""
        sig = F.adaptive_avg_pool2d(maps.unsqueeze(0), SIGNATURE)[0].reshape(maps.shape[0], -1)
        norms = sig.abs().sum(1)
        reps: list[int] = []
        groups: list[list[int]] = []
        for c in norms.argsort(descending=True).tolist():
            if reps:
                dist = (sig[reps] - sig[c]).abs().sum(1)
                best = int(dist.argmin())
                if float(dist[best]) <= self.delta * max(float(norms[reps[best]]), 1e-12):
                    groups[best].append(c)
                    continue
            reps.append(c)
            groups.append([c])
        return reps, groups

    def _account(self, ledger, rows_idx, x, y, kept, merged) -> None:
        lay = self.layer
        c = x.shape[1]
        per_channel = y.shape[2] * y.shape[3] * lay.weight.shape[0] * lay.weight[0, 0].numel()
        kept_t = torch.tensor(kept, dtype=torch.int64)
        merged_t = torch.tensor(merged, dtype=torch.int64)
        comparisons = torch.tensor(kept, dtype=torch.int64) * c * SIGNATURE * SIGNATURE
        ledger.add(
            self.name,
            rows_idx,
            kept_t * per_channel,
            predictor=torch.full((len(kept),), x[0].numel(), dtype=torch.int64),
            comparisons=comparisons,
            gathers=merged_t * lay.weight.shape[0] * lay.weight[0, 0].numel(),
        )
