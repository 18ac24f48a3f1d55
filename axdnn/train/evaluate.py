"""Classification evaluation: top-1/top-5 accuracy, loss, per-class accuracy, confusion matrix."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from axdnn.data import make_loader
from axdnn.runtime import eval_mode


@dataclass
class EvalResult:
    """What one pass over a labelled dataset measured; accuracies are fractions in [0, 1]."""

    top1: float
    top5: float
    loss: float
    samples: int
    per_class_accuracy: list[float]
    confusion: list[list[int]]

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model in eval mode over the dataset and return (logits, labels) on the CPU."""
    logits, labels = [], []
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, seed=0)
    with eval_mode(model):
        for x, y in tqdm(loader, desc="evaluate", disable=not progress, leave=False):
            logits.append(model(x.to(device)).float().cpu())
            labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def score_logits(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> EvalResult:
    """Score precomputed logits against labels."""
    loss = F.cross_entropy(logits, labels).item()
    k = min(5, logits.shape[1])
    topk = logits.topk(k, dim=1).indices
    pred = topk[:, 0]
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    per_class_total = confusion.sum(dim=1).clamp(min=1)
    per_class = (confusion.diagonal() / per_class_total).tolist()
    return EvalResult(
        top1=(pred == labels).float().mean().item(),
        top5=(topk == labels[:, None]).any(dim=1).float().mean().item(),
        loss=loss,
        samples=int(labels.numel()),
        per_class_accuracy=per_class,
        confusion=confusion.tolist(),
    )


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    num_classes: int,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> EvalResult:
    """Evaluate a classifier on a labelled dataset."""
    logits, labels = predict_logits(model, dataset, batch_size, device, progress)
    return score_logits(logits, labels, num_classes)
