"""Seeded synthetic images for benchmarks: Gaussian pixels labelled by the argmax of a fixed random
linear projection, so a perfect classifier exists and training on them is meaningful."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from axdnn.data.bundle import DatasetBundle, build_bundle, split_off
from axdnn.data.spec import DataSpec

SYNTHETIC_SAMPLES = 512
SYNTHETIC_FRACTIONS = (0.7, 0.1, 0.2)
_COARSE = 4  # class templates are drawn on a 4x4 grid and upsampled: smooth, CNN-learnable


def class_templates(
    shape: tuple[int, int, int], classes: int, generator: torch.Generator
) -> torch.Tensor:
    """`classes` smooth random templates of `shape`, each scaled to unit norm."""
    c, h, w = shape
    coarse = torch.randn(classes, c, min(h, _COARSE), min(w, _COARSE), generator=generator)
    templates = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    flat = templates.reshape(classes, -1)
    return flat / flat.norm(dim=1, keepdim=True)


def synthetic_data(
    shape: tuple[int, int, int], classes: int, samples: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) with label = argmax over classes of <image, template>."""
    generator = torch.Generator().manual_seed(seed)
    templates = class_templates(shape, classes, generator)
    images = torch.randn(samples, *shape, generator=generator)
    labels = (images.reshape(samples, -1) @ templates.T).argmax(dim=1)
    return images, labels


def load_synthetic(spec: DataSpec, seed: int = 0) -> DatasetBundle:
    """Load `synthetic:CxHxW:CLASSES[:N]`: the data depend on `seed`, the split does not."""
    assert spec.shape is not None and spec.classes is not None  # guaranteed by parse_spec
    images, labels = synthetic_data(
        spec.shape, spec.classes, spec.samples or SYNTHETIC_SAMPLES, seed
    )
    train, val, test = split_off(images.numpy(), labels.numpy(), SYNTHETIC_FRACTIONS)
    return build_bundle(
        spec.text,
        {"train": train, "val": val, "test": test},
        class_names=[f"class{k}" for k in range(spec.classes)],
        scale=1.0,
    )
