"""Early exits (BranchyNet, Teerapittayanon et al. 2016; conditional deep learning, Panda et al.
2016): a small classifier after a chosen step, trained on the frozen model's features; an input
whose top softmax probability reaches the exit's threshold leaves there and skips the rest."""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from axdnn.errors import DynamicError

MAX_HEAD_FEATURES = 512
"""Pooled features feeding one exit head at most: the head averages the map over equal windows
to the largest grid (a divisor of its size, at most 7) that fits."""


class ExitHead(nn.Module):
    """Fixed average pooling to a small grid, then one linear layer."""

    def __init__(self, feature_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.feature_shape = tuple(feature_shape)
        if len(feature_shape) == 3:
            channels, h, w = feature_shape
            grid = max(
                g
                for g in range(1, 8)
                if h % g == 0 and w % g == 0 and (g == 1 or channels * g * g <= MAX_HEAD_FEATURES)
            )
            self.pool: nn.Module = nn.AvgPool2d((h // grid, w // grid))
            self.grid = grid
            features = channels * grid * grid
        elif len(feature_shape) == 1:
            self.pool = nn.Identity()
            features = feature_shape[0]
        else:
            raise DynamicError(f"an exit needs features of shape CxHxW or F, got {feature_shape}")
        self.fc = nn.Linear(features, num_classes)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x))

    def ops(self) -> tuple[int, int]:
        """(pooling adds, head MACs) per input."""
        pool_adds = 0
        if isinstance(self.pool, nn.AvgPool2d):
            pool_adds = int(torch.tensor(self.feature_shape).prod())
        return pool_adds, int(self.fc.weight.numel())


def train_head(
    head: ExitHead,
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 30,
    lr: float = 1e-2,
    batch_size: int = 256,
    seed: int = 0,
) -> float:
    """Fit the head's linear layer on pooled features; returns the final training accuracy."""
    gen = torch.Generator().manual_seed(seed)
    mean, std = features.mean(0), features.std(0).clamp(min=1e-6)
    opt = torch.optim.Adam(head.fc.parameters(), lr=lr, weight_decay=1e-4)
    z = (features - mean) / std
    with torch.enable_grad():
        for _ in range(epochs):
            perm = torch.randperm(len(z), generator=gen)
            for start in range(0, len(z), batch_size):
                idx = perm[start : start + batch_size]
                loss = nn.functional.cross_entropy(head.fc(z[idx]), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
    with torch.no_grad():  # fold the standardisation into the linear layer
        w = head.fc.weight / std
        head.fc.bias -= (w * mean).sum(1)
        head.fc.weight.copy_(w)
        return float((head.fc(features).argmax(1) == labels).float().mean())


def collect_features(
    run_prefix,
    heads: dict[int, ExitHead],
    x: torch.Tensor,
    *,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[int, torch.Tensor]:
    """Pooled features at each exit step for all of `x`; `run_prefix(x)` yields (index, value)."""
    out: dict[int, list[torch.Tensor]] = {i: [] for i in heads}
    starts = range(0, len(x), batch_size)
    for start in tqdm(starts, desc="exit features", disable=not progress, leave=False):
        for index, value in run_prefix(x[start : start + batch_size]):
            if index in heads:
                out[index].append(heads[index].pooled(value))
    return {i: torch.cat(v) for i, v in out.items()}
