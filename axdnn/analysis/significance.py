"""Per-filter significance and significance-driven filter pruning (Hanif et al., DATE 2018).

Significance of a filter: inject an error into that filter's output feature map only (default:
Gaussian noise with std equal to the map's own std, per sample) and measure the accuracy drop on
held-out data; filters whose drop reaches `threshold` are *significant*. Pruning then masks, per
layer, the least significant filters, and is compared with L1-norm pruning (Li et al., "Pruning
filters for efficient ConvNets", ICLR 2017: smallest sum |w| first) at equal filter counts.

Masking a filter zeroes its channel where the next layer reads it: at the output of the
BatchNorm that directly consumes the conv output (found by tracing one forward), else at the conv
output itself, which equals removing the filter and its BN channel (real slimming is done in
`axdnn.compress`). Nothing in the model is changed; masks are forward hooks removed afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from axdnn.analysis.accuracy import tensor_accuracy
from axdnn.errors import InjectionError
from axdnn.inject import Site, parse_error_model, wilson_interval
from axdnn.inject.injector import predict_with_faults
from axdnn.runtime import TemporaryHooks, eval_mode

DEFAULT_MODEL = "gaussian:1.0,rel=std"


@dataclass
class FilterScore:
    layer: str
    filter: int
    accuracy: float
    low: float
    high: float
    drop: float
    l1: float
    significant: bool


@dataclass
class SignificanceResult:
    """JSON-ready per-filter significance of a model's conv layers."""

    error_model: str
    threshold: float
    baseline_accuracy: float
    samples: int
    repeats: int
    filters: list[FilterScore]
    pruning: list[dict] = field(default_factory=list)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def layer_scores(self, layer: str) -> list[FilterScore]:
        return [f for f in self.filters if f.layer == layer]

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys(f.layer for f in self.filters))


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the model's Conv2d layers (approximate ones included)."""
    return [n for n, m in model.named_modules() if n and isinstance(m, nn.Conv2d)]


def filter_significance(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    layers: Sequence[str] | None = None,
    error_model: str = DEFAULT_MODEL,
    threshold: float = 0.01,
    repeats: int = 1,
    seed: int = 0,
    confidence: float = 0.95,
) -> SignificanceResult:
    """Accuracy drop when each filter's output is corrupted; significant if drop >= threshold."""
    em = parse_error_model(error_model)
    names = list(layers) if layers else conv_layers(model)
    modules = dict(model.named_modules())
    labels = labels.cpu()
    base = tensor_accuracy(model, inputs, labels)
    n = len(labels)
    scores = []
    for li, name in enumerate(names):
        module = modules.get(name)
        if not isinstance(module, nn.Conv2d):
            raise InjectionError(f"significance: {name!r} is not a Conv2d layer of the model")
        l1 = module.weight.detach().abs().sum(dim=(1, 2, 3)).cpu()
        for k in range(module.out_channels):
            hits = 0
            for r in range(repeats):
                pred = predict_with_faults(
                    model, inputs, [Site(name, "output", k)], em, seed * 7919 + li * 1009 + k, r * n
                )
                hits += int((pred == labels).sum())
            ci = wilson_interval(hits, n * repeats, confidence)
            drop = base - ci.estimate
            scores.append(
                FilterScore(
                    name,
                    k,
                    ci.estimate,
                    ci.low,
                    ci.high,
                    drop,
                    float(l1[k]),
                    bool(drop >= threshold),
                )
            )
    return SignificanceResult(error_model, threshold, base, n, repeats, scores, seed=seed)


@torch.no_grad()
def mask_points(model: nn.Module, layers: Sequence[str], example: torch.Tensor) -> dict[str, str]:
    """For each conv layer, the module whose output carries its channels to the next layer: the
    BatchNorm that directly consumes the conv output, else the conv itself."""
    modules = dict(model.named_modules())
    produced: dict[int, str] = {}
    consumers: dict[str, str] = {}

    def pre(_m, args, name):
        src = produced.get(args[0].data_ptr())
        if src is not None:
            consumers.setdefault(src, name)

    with TemporaryHooks() as hooks, eval_mode(model):
        for name in layers:
            hooks.post(
                modules[name],
                lambda _m, _a, out, name=name: produced.__setitem__(out.data_ptr(), name),
            )
        for name, module in modules.items():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                hooks.pre(module, lambda _m, args, name=name: pre(_m, args, name))
        model(example)
    return {name: consumers.get(name, name) for name in layers}


@contextlib.contextmanager
def masked_filters(
    model: nn.Module, masks: dict[str, Sequence[int]], example: torch.Tensor
) -> Iterator[None]:
    """Zero the given filters' channels (see the module docstring) while the block runs."""
    points = mask_points(model, list(masks), example)
    modules = dict(model.named_modules())

    def zero(_m, _a, out, index):
        out = out.clone()
        out[:, index.to(out.device)] = 0
        return out

    with TemporaryHooks() as hooks:
        for layer, filters in masks.items():
            if len(filters):
                index = torch.as_tensor(list(filters), dtype=torch.long)
                hooks.post(
                    modules[points[layer]], lambda m, a, o, index=index: zero(m, a, o, index)
                )
        yield


def prune_comparison(
    model: nn.Module,
    result: SignificanceResult,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    fractions: Sequence[float] = (0.125, 0.25, 0.375, 0.5),
) -> list[dict]:
    """Accuracy after masking, in every analysed layer, the same number of filters chosen by
    significance (least significant first) and by L1 norm (smallest first)."""
    rows = []
    example = inputs[:1]
    for fraction in fractions:
        if not 0 <= fraction < 1:
            raise InjectionError(f"pruning fraction must be in [0, 1), got {fraction}")
        by_sig, by_l1, count = {}, {}, 0
        for layer in result.layers:
            scores = result.layer_scores(layer)
            k = int(round(fraction * len(scores)))
            count += k
            by_sig[layer] = [s.filter for s in sorted(scores, key=lambda s: (s.drop, s.filter))[:k]]
            by_l1[layer] = [s.filter for s in sorted(scores, key=lambda s: (s.l1, s.filter))[:k]]
        with masked_filters(model, by_sig, example):
            acc_sig = tensor_accuracy(model, inputs, labels)
        with masked_filters(model, by_l1, example):
            acc_l1 = tensor_accuracy(model, inputs, labels)
        rows.append(
            {
                "fraction": float(fraction),
                "pruned_filters": count,
                "significance_accuracy": acc_sig,
                "l1_accuracy": acc_l1,
                "advantage": acc_sig - acc_l1,
            }
        )
    return rows
