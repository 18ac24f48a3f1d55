"""`approximate(model, plan, calibration_data)`: a new model whose layers follow the plan.

Nothing is silently exact: every conv/linear layer and every MAC-bearing functional op of the
forward (`F.linear`, `matmul`, `einsum`, ..., named as in `axdnn.sites`) ends up in the report,
approximated or with the reason it stayed float, and a plan that names a layer or op axdnn cannot
approximate is an error (a glob such as `*` passes over ops it cannot run, saying so).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from axdnn.errors import ConfigError
from axdnn.nn.base import ApproxLayer
from axdnn.nn.format_layers import FormatConv2d, FormatLinear
from axdnn.nn.functional_plan import (
    HOLDER,
    FunctionalApproximation,
    FunctionalSite,
    functional_sites,
    note_for,
    plan_functional,
)
from axdnn.nn.layers import ApproxConv2d, ApproxLinear
from axdnn.nn.plan import FormatSpec, LayerSpec, MultiplierSpec, Plan, SpecPart
from axdnn.runtime import TemporaryHooks

LayerMap = Mapping[tuple[type[SpecPart], type[nn.Module]], type[ApproxLayer]]
DEFAULT_LAYER_MAP: dict[tuple[type[SpecPart], type[nn.Module]], type[ApproxLayer]] = {
    (MultiplierSpec, nn.Conv2d): ApproxConv2d,
    (MultiplierSpec, nn.Linear): ApproxLinear,
    (FormatSpec, nn.Conv2d): FormatConv2d,
    (FormatSpec, nn.Linear): FormatLinear,
}
"""Which approximate layer class converts which torch layer under which spec part. Pass your own
to `approximate(..., layer_map={**DEFAULT_LAYER_MAP, (MultiplierSpec, MyConv): MyApproxConv})` to
add a layer type or a conversion without editing axdnn. Types match exactly: a subclass of
nn.Conv2d may compute differently from nn.Conv2d, so it is converted only when the map names it."""

MAC_LAYERS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
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
    compression: dict = field(default_factory=dict)


@dataclass
class ApproximationReport:
    layers: list[LayerRecord] = field(default_factory=list)

    @property
    def exact(self) -> list[LayerRecord]:
        return [r for r in self.layers if r.status == "exact"]

    def to_dict(self) -> dict:
        return {"layers": [asdict(r) for r in self.layers]}


def multiplying_layers(model: nn.Module, layer_map: LayerMap | None = None) -> dict[str, nn.Module]:
    """Modules that multiply weights by activations (torch's MAC layers, their subclasses and
    every type the layer map converts), by qualified name."""
    mapped = {module_type for _, module_type in (layer_map or DEFAULT_LAYER_MAP)}
    kinds = (*MAC_LAYERS, *mapped)
    return {n: m for n, m in model.named_modules() if n and isinstance(m, kinds)}


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _converter(name: str, module: nn.Module, pattern: str, part: SpecPart, layer_map: LayerMap):
    if isinstance(module, ApproxLayer):
        raise ConfigError(f"layer {name!r} is already approximate; apply a plan to the float model")
    target = layer_map.get((type(part), type(module)))
    if target is not None:
        return target
    accepted = sorted(t.__name__ for kind, t in layer_map if kind is type(part))
    hint = ""
    base = next((t for kind, t in layer_map if kind is type(part) and isinstance(module, t)), None)
    if base is not None:
        hint = (
            f"; it subclasses {base.__name__}: if it computes like one, add "
            f"(axdnn.nn.{type(part).__name__}, {type(module).__name__}) to the layer_map "
            "argument of approximate"
        )
    raise ConfigError(
        f"plan pattern {pattern!r} names layer {name!r} of type {type(module).__name__}, which "
        f"axdnn cannot approximate with a {type(part).__name__}; supported: "
        f"{', '.join(accepted)}{hint}"
    )


def _record(name: str, module: nn.Module, pattern: str, spec: LayerSpec) -> LayerRecord:
    return LayerRecord(
        name,
        type(module).__name__,
        "approximate",
        spec.multiplier,
        pattern,
        weight_format=spec.weight_format,
        act_format=spec.act_format,
    )


def approximate(
    model: nn.Module,
    plan: Plan,
    calibration_data: Dataset | DataLoader | torch.Tensor | None,
    *,
    batches: int = CALIBRATION_BATCHES,
    seed: int = 0,
    layer_map: LayerMap | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> nn.Module:
    """Return a calibrated copy of `model` with the plan's layers on their multipliers or in
    their number formats, converted through `layer_map` (default DEFAULT_LAYER_MAP), and its
    planned functional ops on their multipliers (`axdnn.nn.functional_plan`).

    The copy carries `approximation` (an ApproximationReport); the original is untouched.
    With `calibration_data=None` the layers stay uncalibrated, for loading a saved state dict;
    functional ops are then found by running the model on zeros of `input_shape` (per sample).
    """
    layer_map = DEFAULT_LAYER_MAP if layer_map is None else layer_map
    if isinstance(getattr(model, HOLDER, None), FunctionalApproximation):
        raise ConfigError("the model is already approximate; apply a plan to the float model")
    new = copy.deepcopy(model)
    sites = _functional_sites(new, calibration_data, input_shape, layer_map)  # builds lazy layers
    layers = multiplying_layers(new, layer_map)
    chosen = _resolve(plan, [*layers, *(sites or {})], searched=sites is not None)
    report = ApproximationReport()
    for name, module in layers.items():
        kind = type(module).__name__
        if name not in chosen:
            report.layers.append(
                LayerRecord(name, kind, "exact", reason="no plan pattern names it")
            )
            continue
        pattern, spec = chosen[name]
        part = spec.compute
        if part is None:
            reason = f"plan pattern {pattern!r} keeps it float (multiplier: null, no formats)"
            record = LayerRecord(name, kind, "exact", pattern=pattern, reason=reason)
        else:
            target = _converter(name, module, pattern, part, layer_map)
            module = target.from_float(module, part, name=name)
            _replace(new, name, module)
            record = _record(name, layers[name], pattern, spec)
        for transform in spec.transforms:
            record.compression.update(transform.transform(module, name))
        report.layers.append(record)
    _plan_functional(new, (sites or {}).values(), chosen, report)
    if calibration_data is not None:
        idle = calibrate(new, calibration_data, batches, seed)
        _keep_float(new, idle, layers, report)
    new.approximation = report
    return new


def _keep_float(model: nn.Module, names: list[str], originals: dict, report) -> None:
    """Layers that did not run on the calibration data (a branch inference does not take, such
    as a training-only decoder) go back to float, and the report says why."""
    records = {r.name: r for r in report.layers}
    for name in names:
        _replace(model, name, copy.deepcopy(originals[name]))
        record = records[name]
        record.status, record.multiplier = "exact", None
        record.weight_format = record.act_format = None
        record.reason = (
            "it did not run on the calibration data (a branch inference does not take), so it "
            "stays float"
        )


def _functional_sites(model, data, input_shape, layer_map) -> dict[str, FunctionalSite] | None:
    """The model's functional MAC sites, or None when there is nothing to run it on."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if data is not None:
        example = next(_batches(data, 1, 0), None)
    elif input_shape is not None:
        example = torch.zeros((1, *input_shape))
    else:
        return None
    if example is None:
        raise ConfigError("calibration data is empty; give at least one batch")
    excluded = (*MAC_LAYERS, ApproxLayer, *(t for _, t in layer_map))
    return functional_sites(model, example.to(device), excluded)


def _resolve(plan: Plan, names: list[str], *, searched: bool) -> dict[str, tuple[str, LayerSpec]]:
    try:
        return plan.resolve(names)
    except ConfigError as err:
        if searched:
            raise
        raise ConfigError(
            f"{err} (functional ops such as attn.matmul#0 are found by running the model: "
            "give calibration data or input_shape)"
        ) from None


def _plan_functional(model, sites, chosen, report: ApproximationReport) -> None:
    sites = list(sites)
    specs, exact = plan_functional(sites, chosen)
    for site in sites:
        if site.name in exact:
            record = LayerRecord(site.name, site.op, "exact", reason=exact[site.name])
            record.pattern = chosen.get(site.name, (None,))[0]
        else:
            spec = specs[site.name]
            pattern = chosen[site.name][0]
            record = LayerRecord(
                site.name, site.op, "approximate", spec.multiplier, pattern, note_for(spec)
            )
        report.layers.append(record)
    if specs:
        holder = FunctionalApproximation(specs)
        model.add_module(HOLDER, holder)
        holder.install(model)


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
def calibrate(
    model: nn.Module, data, batches: int = CALIBRATION_BATCHES, seed: int = 0
) -> list[str]:
    """Fix every approximate layer's activation range from a few batches of data (format layers
    count how often their FPEC activations are compensated, for the cost model). Returns the
    names of approximate layers that did not run on the data (they stay uncalibrated)."""
    targets = {n: m for n, m in model.named_modules() if isinstance(m, ApproxLayer)}
    holders = [m for m in model.modules() if isinstance(m, FunctionalApproximation)]
    if not targets and not holders:
        return []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ran: set[str] = set()
    for layer in targets.values():
        layer.start_calibration(seed)
    for holder in holders:
        holder.calibrating = True
    seen = 0
    try:
        with TemporaryHooks() as hooks:
            for name, layer in targets.items():
                hooks.pre(layer, lambda _m, _a, name=name: ran.add(name))
            for x in _batches(data, batches, seed):
                model(x.to(device))
                seen += 1
    finally:
        for holder in holders:
            holder.calibrating = False
    if seen == 0:
        raise ConfigError("calibration data is empty; give at least one batch")
    for name in ran:
        targets[name].finish_calibration()
    model.train(was_training)
    return sorted(set(targets) - ran)
