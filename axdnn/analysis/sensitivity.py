"""Per-layer sensitivity sweeps and resilience ranking (Hanif et al., "Error resilience analysis
for systematically employing approximate computing in convolutional neural networks", DATE 2018).

For each site and each error magnitude, inject the error into every sample and measure top-1
accuracy (Wilson interval over samples x repeats). A site's sensitivity score is its mean accuracy
drop over the magnitudes; sites are ranked most sensitive first. Rank confidence comes from a
bootstrap over samples (percentile rank intervals) and rank stability is the Kendall tau between
the bootstrap rankings and the full ranking (and between independent repeats, when there are two
or more): a ranking is called stable when the 5th-percentile tau is at least 0.7.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from axdnn.errors import InjectionError
from axdnn.inject import (
    Site,
    golden_predictions,
    layer_sites,
    parse_error_model,
    parse_site,
    wilson_interval,
)
from axdnn.inject.injector import predict_with_faults
from axdnn.inject.stats import mean_interval

DEFAULT_TEMPLATE = "gaussian:{m},rel=std"
DEFAULT_MAGNITUDES = (0.25, 0.5, 1.0, 2.0)
STABLE_TAU = 0.7


@dataclass
class SensitivityResult:
    """JSON-ready result of a sensitivity sweep."""

    template: str
    magnitudes: list[float]
    baseline_accuracy: float
    samples: int
    repeats: int
    curves: dict[str, list[dict]]
    ranking: list[dict]
    rank_stability: dict
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _site_seed(seed: int, site: int, magnitude: int) -> int:
    return seed * 1_000_003 + site * 10_007 + magnitude * 101


def sensitivity_sweep(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    sites: Sequence[str | Site] | None = None,
    template: str = DEFAULT_TEMPLATE,
    magnitudes: Sequence[float] = DEFAULT_MAGNITUDES,
    repeats: int = 2,
    seed: int = 0,
    bootstrap: int = 200,
    confidence: float = 0.95,
    batch_size: int = 256,
) -> SensitivityResult:
    """Accuracy against error magnitude for each site, with a resilience ranking.

    `template` is an error-model spec with `{m}` for the magnitude (default: Gaussian noise with
    std m times the std of the site's output for that sample).
    """
    if "{m}" not in template:
        raise InjectionError(f"sensitivity template {template!r} needs a '{{m}}' for the magnitude")
    if repeats < 1 or not magnitudes:
        raise InjectionError("a sweep needs repeats >= 1 and at least one magnitude")
    site_list = [parse_site(s) for s in sites] if sites else layer_sites(model)
    labels = labels.cpu()
    with torch.no_grad():
        base_pred = golden_predictions(model, inputs, batch_size)
    base_correct = (base_pred == labels).numpy()
    n = len(labels)
    # correct[site, magnitude, repeat, sample]
    correct = np.zeros((len(site_list), len(magnitudes), repeats, n), dtype=bool)
    for si, site in enumerate(site_list):
        for mi, m in enumerate(magnitudes):
            em = parse_error_model(template.format(m=m))
            for r in range(repeats):
                pred = predict_with_faults(
                    model, inputs, [site], em, _site_seed(seed, si, mi), r * n, batch_size
                )
                correct[si, mi, r] = (pred == labels).numpy()
    curves = {}
    for si, site in enumerate(site_list):
        points = []
        for mi, m in enumerate(magnitudes):
            k = int(correct[si, mi].sum())
            ci = wilson_interval(k, correct[si, mi].size, confidence)
            points.append(
                {
                    "magnitude": float(m),
                    "accuracy": ci.estimate,
                    "low": ci.low,
                    "high": ci.high,
                    "drop": float(base_correct.mean() - ci.estimate),
                }
            )
        curves[str(site)] = points
    ranking, stability = _rank(site_list, correct, base_correct, bootstrap, confidence, seed)
    return SensitivityResult(
        template,
        [float(m) for m in magnitudes],
        float(base_correct.mean()),
        n,
        repeats,
        curves,
        ranking,
        stability,
        seed,
    )


def _scores(correct: np.ndarray, base: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean accuracy drop per site over magnitudes and repeats, on the samples `idx`."""
    return base[idx].mean() - correct[..., idx].mean(axis=(1, 2, 3))


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Rank 1 = most sensitive (largest drop); ties share the better rank order by index."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return ranks


def _tau(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import kendalltau

    if len(a) < 2:
        return 1.0
    value = kendalltau(a, b).statistic
    return 1.0 if np.isnan(value) else float(value)


def _rank(sites, correct, base, bootstrap, confidence, seed):
    n = correct.shape[-1]
    all_idx = np.arange(n)
    scores = _scores(correct, base, all_idx)
    ranks = _ranks(scores)
    rng = np.random.default_rng(seed)
    boot_ranks, taus = [], []
    for _ in range(bootstrap):
        idx = rng.integers(0, n, n)
        r = _ranks(_scores(correct, base, idx))
        boot_ranks.append(r)
        taus.append(_tau(ranks, r))
    boot = np.array(boot_ranks) if boot_ranks else ranks[None, :]
    alpha = (1 - confidence) / 2
    ranking = []
    for si in np.argsort(ranks):
        per_sample = base.astype(float) - correct[si].mean(axis=(0, 1))
        ci = mean_interval(per_sample, confidence)
        ranking.append(
            {
                "site": str(sites[si]),
                "rank": int(ranks[si]),
                "score": float(scores[si]),
                "score_low": ci.low,
                "score_high": ci.high,
                "rank_low": int(np.quantile(boot[:, si], alpha)),
                "rank_high": int(np.quantile(boot[:, si], 1 - alpha)),
            }
        )
    repeat_tau = None
    if correct.shape[2] >= 2:
        half = correct.shape[2] // 2
        s1 = base.mean() - correct[:, :, :half].mean(axis=(1, 2, 3))
        s2 = base.mean() - correct[:, :, half:].mean(axis=(1, 2, 3))
        repeat_tau = _tau(_ranks(s1), _ranks(s2))
    taus_arr = np.array(taus) if taus else np.array([1.0])
    p05 = float(np.quantile(taus_arr, 0.05))
    stability = {
        "bootstrap": bootstrap,
        "kendall_tau_mean": float(taus_arr.mean()),
        "kendall_tau_p05": p05,
        "repeat_split_tau": repeat_tau,
        "stable": bool(p05 >= STABLE_TAU),
    }
    return ranking, stability
