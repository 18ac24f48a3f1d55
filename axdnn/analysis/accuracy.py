"""Top-1 accuracy of a model on in-memory tensors, batched; shared by the analyses."""

from __future__ import annotations

import torch
from torch import nn

from axdnn.inject import golden_predictions


def tensor_accuracy(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 256
) -> float:
    """Fraction of `inputs` the model classifies as `labels` (eval mode, restored after)."""
    pred = golden_predictions(model, inputs, batch_size)
    return float((pred == labels.cpu()).float().mean())
