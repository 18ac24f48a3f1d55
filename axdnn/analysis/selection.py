"""Component selection: per layer, the cheapest approximate multiplier whose noise model keeps the
predicted accuracy within a budget, verified by real table simulation (ReD-CaNe, Mrazek et al.,
DATE 2020: model approximate components as noise, choose per operation).

Prediction: Gaussian noise with each output's mean and std from the component model is injected
at the outputs of the float model's layers (no table lookups), averaged over a few seeded
repeats. By default the conditional model (`axdnn.inject.conditional_component_noise`: moments
per class of the sample's own activation codes); `conditional=False` gives the unconditional one
(`axdnn.inject.component_noise`, moments per input channel and pixel over all samples).
Verification: `axdnn.nn.approximate` with the chosen per-layer plan, which simulates every
product through the multiplier's table, bit-exactly.

Cost of a multiplier ("cheapest"): its published power (`Multiplier.power_mw`) when every
candidate has one; otherwise, or when `costs` is given, a proxy. The default proxy is
1 - NMED/100 (NMED: mean error normalised by the largest product, Liang et al., IEEE TC 2013):
among behavioural models with no circuit figures, more error stands for more hardware removed.
That is a stated assumption, not a measurement; pass `costs` (e.g. from a synthesis report) to
override it. The exact multiplier costs 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from axdnn.analysis.accuracy import tensor_accuracy
from axdnn.arith import get_multiplier
from axdnn.errors import InjectionError
from axdnn.inject import (
    Site,
    activation_histograms,
    component_noise,
    conditional_component_noise,
    wilson_interval,
)
from axdnn.inject.error_models import Clamp
from axdnn.inject.injector import predict_with_faults
from axdnn.nn import ApproxConv2d, ApproxLinear, LayerSpec, Plan, approximate
from axdnn.runtime import TemporaryHooks, eval_mode


def multiplier_costs(
    specs: Sequence[str], costs: Mapping[str, float] | None = None
) -> tuple[dict[str, float], str]:
    """Cost of each candidate and the rule used (`given`, `power_mw` or `1-nmed`)."""
    if costs:
        missing = [s for s in specs if s not in costs]
        if missing:
            raise InjectionError(f"costs given for some candidates but not for {missing}")
        return {s: float(costs[s]) for s in specs}, "given"
    mults = {s: get_multiplier(s) for s in specs}
    if all(m.power_mw is not None for m in mults.values()):
        return {s: float(m.power_mw) for s, m in mults.items()}, "power_mw"
    return {s: 1.0 - m.metrics().nmed_percent / 100.0 for s, m in mults.items()}, "1-nmed"


def _approx_layers(approx: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in approx.named_modules() if isinstance(m, (ApproxConv2d, ApproxLinear))}


@torch.no_grad()
def layer_inputs_shapes(
    model: nn.Module, names: Sequence[str], example: torch.Tensor
) -> dict[str, tuple]:
    """Per-sample input shape of each named layer."""
    modules = dict(model.named_modules())
    shapes = {}
    with TemporaryHooks() as hooks, eval_mode(model):
        for name in names:
            hooks.pre(
                modules[name],
                lambda _m, args, name=name: shapes.__setitem__(name, tuple(args[0].shape[1:])),
            )
        model(example)
    return shapes


class NoiseLibrary:
    """Component noise of every candidate multiplier in every layer, derived once."""

    def __init__(
        self,
        model: nn.Module,
        specs: Sequence[str],
        calibration: torch.Tensor,
        seed: int = 0,
        conditional: bool = True,
    ) -> None:
        self.model = model
        self.noise: dict[tuple[str, str], object] = {}
        self.summaries: dict[tuple[str, str], dict] = {}
        self.layers: list[str] = []
        self.ranges: dict[tuple[str, str], Clamp] = {}
        for spec in specs:
            approx = approximate(model, Plan.uniform(spec), calibration, seed=seed)
            layers = _approx_layers(approx)
            self.layers = list(layers)
            hists = activation_histograms(model, approx, calibration, positional=not conditional)
            shapes = layer_inputs_shapes(model, list(layers), calibration[:1])
            build = conditional_component_noise if conditional else component_noise
            for name, layer in layers.items():
                noise, summary = build(layer, shapes[name], hists[name], name)
                self.noise[(name, spec)] = noise
                self.summaries[(name, spec)] = summary.to_dict()
                self.ranges[(name, spec)] = _input_range(layer)

    def predict(
        self,
        choice: Mapping[str, str],
        inputs: torch.Tensor,
        labels: torch.Tensor,
        repeats: int = 3,
        seed: int = 0,
    ) -> tuple[float, float, float]:
        """Predicted accuracy (and Wilson interval) with the chosen multipliers' noise injected."""
        active = [(n, s) for n, s in choice.items() if s is not None]
        if not active:
            acc = tensor_accuracy(self.model, inputs, labels)
            return acc, acc, acc
        sites = [Site(n) for n, _ in active] + [Site(n, "input") for n, _ in active]
        models = [self.noise[(n, s)] for n, s in active] + [self.ranges[(n, s)] for n, s in active]
        hits = 0
        for r in range(repeats):
            pred = predict_with_faults(
                self.model, inputs, sites, models, seed + 104_729 * r, r * len(inputs)
            )
            hits += int((pred == labels.cpu()).sum())
        ci = wilson_interval(hits, len(labels) * repeats)
        return ci.estimate, ci.low, ci.high


def _input_range(layer) -> Clamp:
    """The real-valued range an approximate layer's activation codes can represent."""
    scheme = layer.a_scheme
    qmin = -scheme.qmax if scheme.symmetric and scheme.signed else scheme.qmin
    scale, zero = float(layer.act_scale), int(layer.act_zero)
    return Clamp(scale * (qmin - zero), scale * (scheme.qmax - zero))


def real_accuracy(
    model: nn.Module,
    plan: Plan,
    calibration: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    seed: int = 0,
) -> float:
    """Accuracy under real table simulation of a plan."""
    return tensor_accuracy(approximate(model, plan, calibration, seed=seed), inputs, labels)


def component_model_check(
    model: nn.Module,
    specs: Sequence[str],
    calibration: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    repeats: int = 3,
    seed: int = 0,
    conditional: bool = True,
) -> list[dict]:
    """For each multiplier on every layer: accuracy predicted by the noise model vs real table
    simulation (and the float accuracy for reference)."""
    float_acc = tensor_accuracy(model, inputs, labels)
    rows = []
    for spec in specs:
        library = NoiseLibrary(model, [spec], calibration, seed, conditional)
        pred, low, high = library.predict(
            {n: spec for n in library.layers}, inputs, labels, repeats, seed
        )
        real = real_accuracy(model, Plan.uniform(spec), calibration, inputs, labels, seed)
        rows.append(
            {
                "multiplier": spec,
                "model": "conditional" if conditional else "unconditional",
                "float_accuracy": float_acc,
                "predicted_accuracy": pred,
                "predicted_low": low,
                "predicted_high": high,
                "real_accuracy": real,
                "difference": pred - real,
            }
        )
    return rows


@dataclass
class SelectionResult:
    """JSON-ready outcome of component selection."""

    budget: float
    cost_rule: str
    costs: dict[str, float]
    baseline_accuracy: float
    choice: dict[str, str | None]
    predicted_accuracy: float
    predicted_low: float
    predicted_high: float
    real_accuracy: float | None
    exact_layers: list[str]
    relative_cost: float
    steps: list[dict] = field(default_factory=list)
    plan: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def select_components(
    model: nn.Module,
    candidates: Sequence[str],
    calibration: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    budget: float = 0.01,
    costs: Mapping[str, float] | None = None,
    repeats: int = 3,
    seed: int = 0,
    verify: bool = True,
    verify_inputs: torch.Tensor | None = None,
    verify_labels: torch.Tensor | None = None,
) -> SelectionResult:
    """Greedy per-layer choice, in forward order: for each layer, the cheapest candidate whose
    noise (together with the layers already chosen) keeps the predicted accuracy within `budget`
    of the float accuracy; layers with no such candidate stay exact. Then verified for real."""
    if not candidates:
        raise InjectionError("component selection needs at least one candidate multiplier")
    if not 0 <= budget < 1:
        raise InjectionError(f"accuracy budget must be in [0, 1), got {budget}")
    cost, rule = multiplier_costs(candidates, costs)
    library = NoiseLibrary(model, list(candidates), calibration, seed)
    baseline = tensor_accuracy(model, inputs, labels)
    order = sorted(candidates, key=lambda s: (cost[s], s))
    choice: dict[str, str | None] = {}
    steps = []
    for layer in library.layers:
        choice[layer] = None
        for spec in order:
            trial = {**choice, layer: spec}
            acc, _, _ = library.predict(trial, inputs, labels, repeats, seed)
            steps.append(
                {
                    "layer": layer,
                    "multiplier": spec,
                    "predicted_accuracy": acc,
                    "accepted": baseline - acc <= budget,
                }
            )
            if baseline - acc <= budget:
                choice[layer] = spec
                break
    pred, low, high = library.predict(choice, inputs, labels, repeats, seed)
    plan = Plan(layers={n: LayerSpec(multiplier=s) for n, s in choice.items()})
    real = None
    if verify:
        vx = inputs if verify_inputs is None else verify_inputs
        vy = labels if verify_labels is None else verify_labels
        real = real_accuracy(model, plan, calibration, vx, vy, seed)
    chosen = [cost[s] for s in choice.values() if s is not None]
    rel = (
        float(np.mean([*chosen, *[1.0] * sum(s is None for s in choice.values())]))
        if choice
        else 1.0
    )
    return SelectionResult(
        budget,
        rule,
        cost,
        baseline,
        choice,
        pred,
        low,
        high,
        real,
        [n for n, s in choice.items() if s is None],
        rel,
        steps,
        plan.model_dump(),
    )
