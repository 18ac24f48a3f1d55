"""The training loop every command shares: seeded, with progress, keeping the best validation state.

Fine-tuning with approximation in the loop reuses it through `loss_fn` (e.g. distillation) and
`regularizer` (e.g. hardware-aware penalties).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from axdnn.data import make_loader
from axdnn.errors import ConfigError
from axdnn.train.evaluate import evaluate
from axdnn.train.precision import PrecisionSession

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Regularizer = Callable[[nn.Module], torch.Tensor]
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "none")


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run."""

    epochs: int = 10
    lr: float = 1e-2
    batch_size: int = 64
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"epochs must be >= 0, got {self.epochs}")
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; expected one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; expected one of {SCHEDULES}")


@dataclass
class EpochRecord:
    epoch: int
    lr: float
    train_loss: float
    train_top1: float
    val_loss: float
    val_top1: float


@dataclass
class TrainHistory:
    """Per-epoch records and which epoch's weights were kept."""

    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = -1
    best_val_top1: float = float("nan")

    def to_dict(self) -> dict:
        return asdict(self)


def _make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, _inputs: torch.Tensor
) -> torch.Tensor:
    return F.cross_entropy(logits, target)


def loss_for(model: nn.Module) -> LossFn:
    """The model's own `training_loss(outputs, target, inputs)` if it has one (capsule networks'
    margin loss), otherwise cross-entropy."""
    own = getattr(model, "training_loss", None)
    return own if callable(own) else cross_entropy


StepCallback = Callable[[int, float], None]


@dataclass
class StepOptions:
    """What one epoch's steps do beyond forward/backward/update (all optional)."""

    regularizer: Regularizer | None = None
    session: PrecisionSession | None = None
    on_step: StepCallback | None = None
    desc: str = ""


def _train_one_epoch(model, loader, optimizer, loss_fn, options: StepOptions, device, progress):
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    session = options.session
    for x, y in tqdm(loader, desc=options.desc, disable=not progress, leave=False):
        x, y = x.to(device), y.to(device)
        with session.step() if session is not None else contextlib.nullcontext():
            logits = model(x)
            loss = loss_fn(logits, y, x)
            if options.regularizer is not None:
                loss = loss + options.regularizer(model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        optimizer.step()
        if session is not None:
            session.after_update()
        if options.on_step is not None:
            options.on_step(len(y), loss.item())
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return total_loss / max(seen, 1), correct / max(seen, 1)


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    num_classes: int,
    config: TrainConfig,
    device: torch.device | str = "cpu",
    progress: bool = False,
    loss_fn: LossFn | None = None,
    regularizer: Regularizer | None = None,
    restore_best: bool = True,
    *,
    session: PrecisionSession | None = None,
    on_step: StepCallback | None = None,
) -> TrainHistory:
    """Train `model` in place and, by default, leave it at the epoch with the best validation
    top-1. The loss defaults to the model's own (`loss_for`). `session` (a `PrecisionSession`
    attached to `model`) holds weights, saved activations and gradients in reduced precision;
    `on_step(batch_size, loss)` is called after every update."""
    loss_fn = loss_for(model) if loss_fn is None else loss_fn
    torch.manual_seed(config.seed)
    model.to(device)
    loader = make_loader(train_set, config.batch_size, shuffle=True, seed=config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _make_optimizer(params, config)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
        if config.schedule == "cosine"
        else None
    )
    history = TrainHistory()
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(config.epochs):
        lr = optimizer.param_groups[0]["lr"]
        desc = f"epoch {epoch + 1}/{config.epochs}"
        options = StepOptions(regularizer, session, on_step, desc)
        train_loss, train_top1 = _train_one_epoch(
            model, loader, optimizer, loss_fn, options, device, progress
        )
        if scheduler is not None:
            scheduler.step()
        val = evaluate(model, val_set, num_classes, device=device)
        history.epochs.append(
            EpochRecord(epoch + 1, lr, train_loss, train_top1, val.loss, val.top1)
        )
        if not history.best_val_top1 >= val.top1:
            history.best_epoch, history.best_val_top1 = epoch + 1, val.top1
            best_state = copy.deepcopy(model.state_dict())
        if progress:
            tqdm.write(f"{desc}: loss {train_loss:.4f} train {train_top1:.2%} val {val.top1:.2%}")
    if restore_best and history.epochs:
        model.load_state_dict(best_state)
    return history
