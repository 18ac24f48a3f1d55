"""Approximation-aware fine-tuning: train an approximated model with the table in the forward pass.

Options beyond the plain loop:
- knowledge distillation from the exact (float) model (Hinton et al. 2015): the loss is
  (1 - alpha) * CE + alpha * T^2 * KL(teacher_T || student_T);
- a hardware-aware regulariser in the spirit of ProxSim (De la Parra et al., DATE 2021):
  for each approximate layer and each weight code b, the expected relative error the multiplier
  makes on that code, c(b) = sum_a p(a) |M[a, b] - a*b| / max_b(...), with p the activation-code
  histogram seen during calibration. The penalty is the mean of c at every weight's (continuous)
  code position, linearly interpolated, so its gradient pulls weights toward codes where the
  multiplier errs little.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from axdnn.errors import ConfigError
from axdnn.nn import APPROX_LAYERS
from axdnn.nn.quant import code_index
from axdnn.train.loop import LossFn, TrainConfig, TrainHistory, fit, loss_for


@dataclass
class FinetuneOptions:
    """Distillation and regularisation settings (0 disables each)."""

    distill_alpha: float = 0.0
    distill_temperature: float = 4.0
    hw_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.distill_alpha < 1:
            raise ConfigError(
                f"distillation weight {self.distill_alpha!r} is outside [0, 1): 0 turns it off, "
                "values toward 1 weigh the teacher's outputs more"
            )
        if not self.distill_temperature > 0:
            raise ConfigError(
                f"distillation temperature must be > 0, got {self.distill_temperature}"
            )
        if not self.hw_weight >= 0:
            raise ConfigError(f"hardware regulariser weight must be >= 0, got {self.hw_weight}")


def distillation_loss(teacher: nn.Module, alpha: float, temperature: float) -> LossFn:
    """Cross-entropy blended with the teacher's softened outputs."""
    teacher.eval()

    def loss(logits: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            soft = F.softmax(teacher(inputs) / temperature, dim=1)
        kl = F.kl_div(F.log_softmax(logits / temperature, dim=1), soft, reduction="batchmean")
        return (1 - alpha) * F.cross_entropy(logits, target) + alpha * temperature**2 * kl

    return loss


def code_error_cost(layer: nn.Module) -> torch.Tensor:
    """Expected |error| per weight value (qmin..qmax, value order), scaled to max 1."""
    m = layer.multiplier
    hist = layer.act_hist.double()
    p = hist / hist.sum() if hist.sum() > 0 else torch.full_like(hist, 1 / hist.numel())
    err = m.error_table().double().abs()  # [a_index, b_index]
    per_b_index = p @ err
    scheme = layer.b_scheme
    values = torch.arange(scheme.qmin, scheme.qmax + 1)
    cost = per_b_index[code_index(values, scheme.bits)]
    return (cost / cost.max()).float() if cost.max() > 0 else cost.float()


def hardware_regularizer(model: nn.Module, weight: float):
    """Penalty pulling each approximate layer's weights toward low-error operand codes."""
    layers = [m for m in model.modules() if isinstance(m, APPROX_LAYERS)]
    costs = [code_error_cost(layer) for layer in layers]

    def penalty(_model: nn.Module) -> torch.Tensor:
        total = torch.zeros(())
        for layer, cost in zip(layers, costs, strict=True):
            ws, wz = layer.weight_qparams()
            shape = [-1] + [1] * (layer.weight.dim() - 1)
            scheme = layer.b_scheme
            pos = layer.weight / ws.reshape(shape).detach() + wz.reshape(shape)
            pos = (pos - scheme.qmin).clamp(0, scheme.qmax - scheme.qmin)
            lo = pos.detach().floor().clamp(max=cost.numel() - 2).long()
            frac = pos - lo
            c = cost.to(pos.device)
            total = total + ((1 - frac) * c[lo] + frac * c[lo + 1]).mean()
        return weight * total / max(len(layers), 1)

    return penalty


def finetune(
    model: nn.Module,
    train_set,
    val_set,
    num_classes: int,
    config: TrainConfig,
    options: FinetuneOptions | None = None,
    teacher: nn.Module | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> TrainHistory:
    """Fine-tune an approximated model in place (see the module docstring for the options)."""
    options = options or FinetuneOptions()
    loss_fn = loss_for(model)
    if options.distill_alpha > 0:
        if teacher is None:
            raise ValueError("distillation needs the exact teacher model")
        loss_fn = distillation_loss(
            teacher.to(device), options.distill_alpha, options.distill_temperature
        )
    regularizer = hardware_regularizer(model, options.hw_weight) if options.hw_weight > 0 else None
    return fit(
        model, train_set, val_set, num_classes, config, device, progress, loss_fn, regularizer
    )
