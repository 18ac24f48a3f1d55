"""DatasetBundle and the steps every source shares: fixed stratified splits, resizing to a
requested CxHxW, and per-channel normalisation with train-set statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from axdnn.errors import DataError

Shape = tuple[int, int, int]
Split = tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]

SPLIT_SEED = 0
"""Seed of every train/val/test split: fixed, so results stay comparable across runs and seeds."""

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights, for RGB -> grey
_CHUNK = 4096  # images resized per interpolate call, to bound peak memory


@dataclass
class DatasetBundle:
    """Train/val/test splits of one dataset, normalised with train-set per-channel mean/std.

    Images are float32 N x C x H x W, labels int64; `mean`/`std` are in units of pixel values
    scaled to [0, 1] (raw values for `synthetic`), so `x * std + mean` undoes the normalisation.
    """

    spec: str
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_classes: int
    input_shape: tuple[int, int, int]
    class_names: list[str]
    mean: list[float]
    std: list[float]

    def summary(self) -> dict:
        """JSON-ready description (no tensors) for reports and experiment records."""
        return {
            "spec": self.spec,
            "sizes": {name: len(getattr(self, name)) for name in ("train", "val", "test")},
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "class_names": list(self.class_names),
            "mean": list(self.mean),
            "std": list(self.std),
        }


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float], seed: int = SPLIT_SEED
) -> list[np.ndarray]:
    """Split indices per class by `fractions` (first part takes the rounding remainder).

    Each class is shuffled with one seeded generator, so the same labels give the same split.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        counts = [int(np.floor(f * len(idx) + 0.5)) for f in fractions[1:]]
        counts.insert(0, len(idx) - sum(counts))
        bounds = np.cumsum([0, *counts])
        for part, lo, hi in zip(parts, bounds[:-1], bounds[1:], strict=True):
            part.append(idx[lo:hi])
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def to_shape(images: torch.Tensor, shape: Shape, spec: str) -> torch.Tensor:
    """Convert float N x C x H x W images to `shape`: channels replicated (1->3) or turned to
    luma (3->1, BT.601), then bilinear resize (align_corners=False, antialiased when shrinking)."""
    c, h, w = shape
    have = images.shape[1]
    if have != c:
        if have == 1 and c == 3:
            images = images.expand(-1, 3, -1, -1)
        elif have == 3 and c == 1:
            weights = torch.tensor(_LUMA, dtype=images.dtype).view(1, 3, 1, 1)
            images = (images * weights).sum(dim=1, keepdim=True)
        else:
            raise DataError(f"dataset spec {spec!r}: cannot turn {have}-channel images into {c}")
    if tuple(images.shape[2:]) != (h, w):
        if len(images) == 0:
            return images.new_zeros((0, c, h, w))
        shrink = h < images.shape[2] or w < images.shape[3]
        resized = [
            F.interpolate(
                chunk, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink
            )
            for chunk in images.split(_CHUNK)
        ]
        images = torch.cat(resized)
    return images.contiguous()


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std over N, H, W; a constant channel gets std 1.

    Two passes with float64 accumulation, chunk by chunk, so large datasets need no full copy.
    """
    array = images.detach().cpu().numpy()
    axes = (0, 2, 3)
    count = max(array.size // max(array.shape[1], 1), 1)
    mean = array.mean(axis=axes, dtype=np.float64) if len(array) else np.zeros(array.shape[1])
    centre = mean.astype(array.dtype).reshape(1, -1, 1, 1)
    squares = np.zeros_like(mean)
    for start in range(0, len(array), _CHUNK):
        squares += np.square(array[start : start + _CHUNK] - centre).sum(
            axis=axes, dtype=np.float64
        )
    std = np.sqrt(squares / count)
    std = np.where(std > 1e-6, std, 1.0)
    return [float(v) for v in mean], [float(v) for v in std]


def normalise_(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalise images in place per channel: (x - mean) / std."""
    m = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
    return images.sub_(m).div_(s)


def _labels(
    labels: np.ndarray | torch.Tensor, count: int, num_classes: int, where: str
) -> torch.Tensor:
    y = torch.as_tensor(np.asarray(labels)).to(torch.int64).reshape(-1)
    if len(y) != count:
        raise DataError(f"{where}: {count} images but {len(y)} labels")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(
            f"{where}: labels range {int(y.min())}..{int(y.max())}, expected 0..{num_classes - 1}"
        )
    return y


def build_bundle(
    spec: str,
    splits: dict[str, Split],
    class_names: Sequence[str],
    scale: float,
    shape: Shape | None = None,
) -> DatasetBundle:
    """Turn raw train/val/test arrays (N x C x H x W, any numeric dtype) into a DatasetBundle:
    divide by `scale`, convert to `shape` (default: as stored), normalise with train statistics."""
    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for name in ("train", "val", "test"):
        x, y = splits[name]
        images = torch.tensor(np.asarray(x), dtype=torch.float32).div_(scale)
        if images.ndim != 4:
            raise DataError(
                f"dataset {spec!r} {name} images have shape {tuple(images.shape)}, "
                "expected N x C x H x W"
            )
        if len(images) == 0:
            raise DataError(
                f"dataset {spec!r} has an empty {name} split; it needs more samples "
                "(each class is split separately)"
            )
        if shape is not None:
            images = to_shape(images, shape, spec)
        labels = _labels(y, len(images), len(class_names), f"dataset {spec!r} {name}")
        tensors[name] = (images, labels)
    mean, std = channel_stats(tensors["train"][0])
    for images, _ in tensors.values():
        normalise_(images, mean, std)
    c, h, w = tensors["train"][0].shape[1:]
    return DatasetBundle(
        spec=spec,
        train=TensorDataset(*tensors["train"]),
        val=TensorDataset(*tensors["val"]),
        test=TensorDataset(*tensors["test"]),
        num_classes=len(class_names),
        input_shape=(int(c), int(h), int(w)),
        class_names=[str(n) for n in class_names],
        mean=mean,
        std=std,
    )


def split_off(x: np.ndarray, y: np.ndarray, fractions: Sequence[float]) -> list[Split]:
    """Split (images, labels) into stratified parts with the fixed SPLIT_SEED."""
    return [(x[idx], y[idx]) for idx in stratified_split(y, fractions)]
