"""`approximate(model, plan, calibration_data)`: a new model whose layers follow the plan.

Nothing is silently exact: every conv/linear layer ends up in the report, approximated or with the
reason it stayed float, and a plan that names a layer axdnn cannot approximate is an error.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from axdnn.arith import get_multiplier
from axdnn.errors import ConfigError
from axdnn.nn.format_layers import FORMAT_LAYERS, FormatConv2d, FormatLinear
from axdnn.nn.layers import APPROX_LAYERS, ApproxConfig, ApproxConv2d, ApproxLinear
from axdnn.nn.plan import LayerSpec, Plan

SUPPORTED = {nn.Conv2d: ApproxConv2d, nn.Linear: ApproxLinear}
FORMAT_SUPPORTED = {nn.Conv2d: FormatConv2d, nn.Linear: FormatLinear}
UNSUPPORTED = (
    nn.Conv1d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Bilinear,
    nn.MultiheadAttention,
)
CALIBRATION_BATCHES = 8
CALIBRATION_BATCH_SIZE = 64


@dataclass
class LayerRecord:
    """How one multiplying layer runs: approximated with a multiplier or in number formats
    (status 'approximate'), or exact and why."""

    name: str
    kind: str
    status: str
    multiplier: str | None = None
    pattern: str | None = None
    reason: str = ""
    weight_format: str | None = None
    act_format: str | None = None


@dataclass
class ApproximationReport:
    layers: list[LayerRecord] = field(default_factory=list)

    @property
    def exact(self) -> list[LayerRecord]:
        return [r for r in self.layers if r.status == "exact"]

    def to_dict(self) -> dict:
        return {"layers": [asdict(r) for r in self.layers]}


def multiplying_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Modules that multiply weights by activations, by qualified name."""
    kinds = (*SUPPORTED, *UNSUPPORTED)
    return {n: m for n, m in model.named_modules() if n and isinstance(m, kinds)}


def config_of(spec: LayerSpec) -> ApproxConfig:
    return ApproxConfig(
        act_observer=spec.act_observer,
        weight_observer=spec.weight_observer,
        per_channel=spec.per_channel,
        acc_bits=spec.acc_bits,
        gradient=spec.gradient,
        backend=spec.backend,
    )


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _convert(name: str, module: nn.Module, pattern: str, spec: LayerSpec) -> nn.Module:
    if isinstance(module, (*APPROX_LAYERS, *FORMAT_LAYERS)):
        raise ConfigError(f"layer {name!r} is already approximate; apply a plan to the float model")
    table = SUPPORTED if spec.multiplier is not None else FORMAT_SUPPORTED
    target = table.get(type(module))
    if target is None:
        raise ConfigError(
            f"plan pattern {pattern!r} names layer {name!r} of type {type(module).__name__}, which "
            f"axdnn cannot approximate; supported: {', '.join(t.__name__ for t in table)}"
        )
    if spec.multiplier is None:
        layer = target.from_float(module, spec.weight_format, spec.act_format)
    else:
        layer = target.from_float(module, get_multiplier(spec.multiplier), config_of(spec))
    layer._axdnn_name = name
    return layer


def approximate(
    model: nn.Module,
    plan: Plan,
    calibration_data: Dataset | DataLoader | torch.Tensor | None,
    batches: int = CALIBRATION_BATCHES,
    seed: int = 0,
) -> nn.Module:
    """Return a calibrated copy of `model` with the plan's layers on their multipliers or in
    their number formats (a LayerSpec with formats and no multiplier).

    The copy carries `approximation` (an ApproximationReport); the original is untouched.
    With `calibration_data=None` the layers stay uncalibrated, for loading a saved state dict.
    """
    new = copy.deepcopy(model)
    layers = multiplying_layers(new)
    chosen = plan.resolve(list(layers))
    report = ApproximationReport()
    for name, module in layers.items():
        kind = type(module).__name__
        if name not in chosen:
            report.layers.append(
                LayerRecord(name, kind, "exact", reason="no plan pattern names it")
            )
            continue
        pattern, spec = chosen[name]
        if spec.multiplier is None and not spec.has_formats:
            reason = f"plan pattern {pattern!r} keeps it float (multiplier: null, no formats)"
            report.layers.append(LayerRecord(name, kind, "exact", pattern=pattern, reason=reason))
            continue
        _replace(new, name, _convert(name, module, pattern, spec))
        report.layers.append(
            LayerRecord(
                name,
                kind,
                "approximate",
                spec.multiplier,
                pattern,
                weight_format=spec.weight_format,
                act_format=spec.act_format,
            )
        )
    if calibration_data is not None:
        calibrate(new, calibration_data, batches, seed)
    new.approximation = report
    return new


def _batches(data, batches: int, seed: int):
    if isinstance(data, torch.Tensor):
        data = TensorDataset(data)
    if isinstance(data, Dataset):
        generator = torch.Generator().manual_seed(seed)
        data = DataLoader(
            data, batch_size=CALIBRATION_BATCH_SIZE, shuffle=True, generator=generator
        )
    for i, batch in enumerate(data):
        if i >= batches:
            break
        yield batch[0] if isinstance(batch, (list, tuple)) else batch


@torch.no_grad()
def calibrate(model: nn.Module, data, batches: int = CALIBRATION_BATCHES, seed: int = 0) -> None:
    """Fix every approximate layer's activation range from a few batches of data (format layers
    count how often their FPEC activations are compensated, for the cost model)."""
    targets = [m for m in model.modules() if isinstance(m, (*APPROX_LAYERS, *FORMAT_LAYERS))]
    if not targets:
        return
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    for layer in targets:
        layer.start_calibration(seed)
    seen = 0
    for x in _batches(data, batches, seed):
        model(x.to(device))
        seen += 1
    if seen == 0:
        raise ConfigError("calibration data is empty; give at least one batch")
    for layer in targets:
        layer.finish_calibration()
    model.train(was_training)
