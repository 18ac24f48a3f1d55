"""Top-1 accuracy of a model on in-memory tensors, batched; shared by the analyses."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def tensor_accuracy(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 256
) -> float:
    """Fraction of `inputs` the model classifies as `labels` (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    try:
        pred = torch.cat(
            [
                model(inputs[i : i + batch_size]).argmax(1).cpu()
                for i in range(0, len(inputs), batch_size)
            ]
        )
    finally:
        model.train(was_training)
    return float((pred == labels.cpu()).float().mean())
