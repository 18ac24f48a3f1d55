"""The paper's exploration of weight sharing without retraining: the number of shared values k of
each layer is searched with Optuna's NSGA-II sampler for the highest compression ratio and
accuracy, under the constraint that accuracy drops by at most `budget` (0.005: half a point).

A per-layer sensitivity pass first finds, for each layer alone, the smallest k on a ladder that
keeps the drop within the budget; that point and uniform-k points seed the search.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import optuna
import torch
from torch import nn
from tqdm.auto import tqdm

from axdnn.compress.sharing import SharedWeights, cluster, compression_ratio, shareable_layers
from axdnn.errors import CompressionError
from axdnn.runtime import eval_mode


@dataclass
class SharingTrial:
    """One evaluated choice of k per layer."""

    number: int
    ks: dict[str, int]
    compression_ratio: float
    accuracy: float
    drop: float
    feasible: bool


@dataclass
class SharingSearchResult:
    """Every trial of a sharing search, the Pareto front and the best feasible point."""

    baseline_accuracy: float
    budget: float
    bits: int
    k_range: tuple[int, int]
    samples: int
    seed: int
    layers: dict[str, int]
    sensitivity: dict[str, int]
    trials: list[SharingTrial] = field(default_factory=list)
    pareto: list[int] = field(default_factory=list)

    @property
    def best(self) -> SharingTrial | None:
        """Highest compression ratio within the budget (ties: higher accuracy)."""
        ok = [t for t in self.trials if t.feasible]
        return max(ok, key=lambda t: (t.compression_ratio, t.accuracy), default=None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["k_range"] = list(self.k_range)
        best = self.best
        d["best"] = None if best is None else asdict(best)
        return d


@torch.no_grad()
def accuracy(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch: int = 512):
    """Top-1 accuracy of `model` on tensors, in eval mode."""
    correct = 0
    with eval_mode(model):
        for i in range(0, len(labels), batch):
            pred = model(inputs[i : i + batch]).argmax(1).cpu()
            correct += int((pred == labels[i : i + batch].cpu()).sum())
    return correct / max(len(labels), 1)


class _Sharer:
    """Applies a {layer: k} choice to a working copy, caching each layer's clustering."""

    def __init__(self, model: nn.Module, layers: Sequence[str]) -> None:
        self.model = copy.deepcopy(model).eval()
        self.modules = {n: m for n, m in self.model.named_modules() if n in set(layers)}
        self.original = {n: m.weight.detach().clone() for n, m in self.modules.items()}
        self.cache: dict[tuple[str, int], SharedWeights] = {}

    def apply(self, ks: dict[str, int]) -> nn.Module:
        with torch.no_grad():
            for name, module in self.modules.items():
                k = ks.get(name)
                if k is None:
                    module.weight.copy_(self.original[name])
                    continue
                if (name, k) not in self.cache:
                    self.cache[(name, k)] = cluster(self.original[name], k)
                module.weight.copy_(self.cache[(name, k)].dense())
        return self.model


def _ladder(low: int, high: int) -> list[int]:
    """k_min, the powers of two strictly between, k_max: 3, 4, 8, 16, 20 for (3, 20)."""
    powers = [2**b for b in range(1, high.bit_length() + 1) if low < 2**b < high]
    return sorted({low, *powers, high})


def layer_sensitivity(sharer, layers, data, base, budget, k_range) -> dict[str, int]:
    """Per layer alone: the smallest k on the ladder (k_min, powers of two, k_max) whose
    accuracy drop stays within `budget` (k_max when none does)."""
    found = {}
    for name in layers:
        found[name] = k_range[1]
        for k in _ladder(*k_range):
            if base - accuracy(sharer.apply({name: k}), *data) <= budget:
                found[name] = k
                break
    return found


def _check(budget: float, k_range: Sequence[int], trials: int, bits: int) -> tuple[int, int]:
    low, high = (int(k) for k in k_range)
    if not 1 <= low <= high:
        raise CompressionError(f"k range {tuple(k_range)!r}: need 1 <= k_min <= k_max")
    if not 0 <= budget < 1:
        raise CompressionError(f"accuracy budget {budget!r} must be in [0, 1) (0.005: 0.5 pt)")
    if trials < 1 or not 1 <= bits <= 64:
        raise CompressionError(f"trials={trials!r} must be >= 1 and bits={bits!r} in [1, 64]")
    return low, high


def search_sharing(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    budget: float = 0.005,
    *,
    bits: int = 16,
    k_range: Sequence[int] = (2, 64),
    powers_of_two: bool = True,
    trials: int = 100,
    population: int = 16,
    layers: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> SharingSearchResult:
    """NSGA-II search over k per layer (no retraining) maximising compression ratio and
    accuracy with accuracy drop <= budget; the model is not changed. `powers_of_two` limits k
    to k_min, the powers of two between, and k_max."""
    k_range = _check(budget, k_range, trials, bits)
    weights = shareable_layers(model)
    names = list(layers) if layers else list(weights)
    unknown = sorted(set(names) - set(weights))
    if unknown:
        raise CompressionError(f"layers {unknown} are not conv/linear layers; have {list(weights)}")
    sharer, data = _Sharer(model, names), (inputs, labels)
    base = accuracy(sharer.model, *data)
    sensitivity = layer_sensitivity(sharer, names, data, base, budget, k_range)
    result = SharingSearchResult(base, budget, bits, k_range, len(labels), seed,
                                 {n: weights[n] for n in names}, sensitivity)  # fmt: skip
    study = _study(population, seed)
    for seed_point in _seeds(names, sensitivity, k_range):
        study.enqueue_trial(seed_point)
    bar = tqdm(total=trials, desc="sharing search", disable=not progress)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        ks = {n: _suggest(trial, n, k_range, powers_of_two) for n in names}
        cr = compression_ratio(result.layers, ks, bits)
        acc = accuracy(sharer.apply(ks), *data)
        trial.set_constraint("accuracy_drop", (base - acc) - budget)
        result.trials.append(SharingTrial(trial.number, ks, cr, acc, base - acc,
                                          base - acc <= budget + 1e-12))  # fmt: skip
        bar.update()
        return cr, acc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(objective, n_trials=trials)
    bar.close()
    result.pareto = sorted(t.number for t in study.best_trials)
    return result


def _suggest(trial: optuna.Trial, name: str, k_range: tuple[int, int], powers: bool) -> int:
    """k of one layer: any integer in the range, or (default) the powers of two in it plus its
    ends, since a k between two powers costs the same index bits as the larger one."""
    if not powers:
        return trial.suggest_int(name, *k_range)
    return trial.suggest_categorical(name, _ladder(*k_range))


def _study(population: int, seed: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(population_size=max(2, population), seed=seed)
    return optuna.create_study(directions=["maximize", "maximize"], sampler=sampler)


def _seeds(names, sensitivity, k_range) -> list[dict[str, int]]:
    """Starting points: the per-layer sensitivity choice, then uniform k on the ladder."""
    points = [dict(sensitivity)]
    points += [{n: k for n in names} for k in reversed(_ladder(*k_range))]
    return points
