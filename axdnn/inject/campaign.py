"""Fault-injection campaigns: many trials, vectorised over the batch, stored as they finish.

A trial is one fault: at activation sites it hits one sample (one fault per sample, so a batch
of B samples runs B trials in one forward); at weight sites it corrupts the weights for
`samples_per_trial` samples and is restored afterwards. Trial `t`'s site, sample, element and
error draws are a pure function of (seed, t) (`axdnn.inject.rng`), so trials can run in any
order, in several processes, or again after a kill, and give the same faults. The number of
trials is planned up front (Leveugle et al. 2009) or given; with `adaptive` the campaign stops
once the Wilson interval of the critical-fault rate is within the margin (checked after each
block; note that repeated looks make the nominal confidence slightly optimistic).

Outcomes per trial: `n_flipped` samples whose top-1 differs from the fault-free prediction
(a trial with n_flipped > 0 is *critical*, the SDC-1 rate of the literature) and the accuracy
drop (golden_correct - n_correct) / n_samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from axdnn.errors import InjectionError
from axdnn.inject.bits import format_width
from axdnn.inject.error_models import Draws, ErrorModel, StreamCache, parse_error_model
from axdnn.inject.injector import BlockFaults, Injector, state_hash, weight_fault
from axdnn.inject.rng import trial_index, trial_uniform
from axdnn.inject.sites import Site, layer_sites, parse_site, region, site_shapes
from axdnn.inject.stats import (
    leveugle_sample_size,
    mean_interval_from_sums,
    should_stop,
    wilson_interval,
)
from axdnn.inject.store import CampaignStore, owner_id
from axdnn.runtime import eval_mode

SITE_STREAM, ELEMENT_STREAM = 0, 1
WEIGHTINGS = ("elements", "uniform")
HUGE_POPULATION = 10**12


@dataclass
class CampaignConfig:
    """What a campaign injects, where, and how many times."""

    name: str
    error_model: str
    sites: list[str] = field(default_factory=list)
    trials: int | None = None
    margin: float = 0.01
    confidence: float = 0.95
    seed: int = 0
    batch_size: int = 32
    block_size: int = 256
    scope: str | None = None
    adaptive: bool = False
    min_trials: int = 200
    samples_per_trial: int = 32
    site_weighting: str = "elements"

    def __post_init__(self) -> None:
        parse_error_model(self.error_model)
        if self.site_weighting not in WEIGHTINGS:
            raise InjectionError(
                f"site_weighting {self.site_weighting!r}; expected one of {WEIGHTINGS}"
            )
        for key in ("batch_size", "block_size", "samples_per_trial", "min_trials"):
            if getattr(self, key) < 1:
                raise InjectionError(f"campaign {self.name!r}: {key} must be >= 1")
        if self.trials is not None and self.trials < 1:
            raise InjectionError(f"campaign {self.name!r}: trials must be >= 1, got {self.trials}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CampaignPlan:
    """Sites, their region sizes, the sampling weights and the planned number of trials."""

    sites: list[Site]
    shapes: list[tuple[int, ...]]
    sizes: np.ndarray
    cumulative: np.ndarray
    planned: int
    population: int
    weights_only: bool
    perm: np.ndarray
    offsets: np.ndarray
    numel: np.ndarray

    def site_of(self, seed: int, trials: np.ndarray) -> np.ndarray:
        u = trial_uniform(seed, trials, SITE_STREAM) * self.cumulative[-1]
        return np.minimum(np.searchsorted(self.cumulative, u, side="right"), len(self.sites) - 1)

    def element_of(self, seed: int, trials: np.ndarray, sites: np.ndarray) -> np.ndarray:
        return trial_index(seed, trials, ELEMENT_STREAM, self.sizes[sites])


def plan_campaign(model: nn.Module, inputs: torch.Tensor, config: CampaignConfig) -> CampaignPlan:
    """Resolve sites and shapes and plan the number of trials."""
    error_model = parse_error_model(config.error_model)
    sites = [parse_site(s) for s in config.sites] or layer_sites(model)
    if not sites:
        raise InjectionError(
            f"campaign {config.name!r}: no sites given and the model has no layers"
        )
    weights_only = all(s.kind == "weight" for s in sites)
    if not weights_only and any(s.kind == "weight" for s in sites):
        raise InjectionError(
            f"campaign {config.name!r} mixes weight and activation sites; run one campaign each"
        )
    shapes = site_shapes(model, sites, inputs[:1])
    regions = [region(shape, s.channel) for shape, s in zip(shapes, sites, strict=True)]
    sizes = np.array([size for _, size in regions], dtype=np.int64)
    offsets = np.array([offset for offset, _ in regions], dtype=np.int64)
    numel = np.array([int(np.prod(shape)) for shape in shapes], dtype=np.int64)
    weights = (
        sizes.astype(np.float64) if config.site_weighting == "elements" else np.ones(len(sites))
    )
    scope = config.scope or error_model.default_scope
    per_fault = _fault_choices(error_model) if scope == "element" else HUGE_POPULATION
    population = min(
        HUGE_POPULATION, int(sizes.sum()) * per_fault * (1 if weights_only else len(inputs))
    )
    planned = config.trials or leveugle_sample_size(population, config.margin, config.confidence)
    perm = np.random.default_rng(config.seed).permutation(len(inputs))
    return CampaignPlan(
        sites,
        shapes,
        sizes,
        np.cumsum(weights),
        planned,
        population,
        weights_only,
        perm,
        offsets,
        numel,
    )


def _fault_choices(model: ErrorModel) -> int:
    fmt, bit = getattr(model, "fmt", None), getattr(model, "bit", "n/a")
    if fmt is not None and bit is None:
        return format_width(fmt)
    return (
        1
        if fmt is not None
        else HUGE_POPULATION
        if model.kind in ("random", "gaussian", "uniform")
        else 1
    )


@dataclass
class CampaignResult:
    """JSON-ready summary of a campaign's stored trials."""

    name: str
    store: str
    status: str
    planned: int
    trials: int
    blocks: dict[str, int]
    error_model: str
    sites: list[str]
    critical_rate: dict
    accuracy_drop: dict
    golden_accuracy: float
    faulty_accuracy: float
    per_site: list[dict]
    trials_run_here: int = 0
    seconds: float = 0.0
    population: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def golden_predictions(
    model: nn.Module, inputs: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """Fault-free top-1 of every input (eval mode, no autograd, batched)."""
    with torch.no_grad(), eval_mode(model):
        preds = [
            model(inputs[i : i + batch_size]).argmax(dim=1).cpu()
            for i in range(0, len(inputs), batch_size)
        ]
    return torch.cat(preds)


class _Runner:
    """Runs the trials of one block against a model (activation or weight sites)."""

    def __init__(self, model, inputs, labels, golden, plan, config, error_model, injector):
        self.model, self.inputs, self.labels, self.golden = model, inputs, labels, golden
        self.plan, self.config, self.error_model, self.injector = (
            plan,
            config,
            error_model,
            injector,
        )
        self.scope = config.scope or error_model.default_scope
        self.seed = config.seed
        self.sites = [str(s) for s in plan.sites]

    def block(self, start: int, stop: int) -> list[dict[str, Any]]:
        if self.plan.weights_only:
            return [self._weight_trial(t) for t in range(start, stop)]
        return self.activation_block(np.arange(start, stop)).rows()

    def activation_block(self, ids: np.ndarray) -> _BlockOutcome:
        """Run a block of activation trials, `batch_size` per forward. Every fault of the block
        is drawn and laid out at once (vectorised, sorted by forward and site); per forward the
        injector is re-armed with one attribute write and each hook does one gather and one
        scatter, so the Python cost per forward does not grow with the number of trials."""
        plan, n, bs, n_sites = self.plan, len(self.inputs), self.config.batch_size, len(self.sites)
        ids = np.asarray(ids, dtype=np.int64)
        m, device = len(ids), self.inputs.device
        samples = plan.perm[ids % n]
        sites = plan.site_of(self.seed, ids)
        elements = plan.element_of(self.seed, ids, sites) if self.scope == "element" else None
        cache = StreamCache(self.seed, ids)
        n_forwards = -(-m // bs)
        keys = (np.arange(m) // bs) * n_sites + sites
        order = np.argsort(keys, kind="stable")
        bounds = np.zeros(n_forwards * n_sites + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys, minlength=n_forwards * n_sites), out=bounds[1:])
        rows = order % bs
        sorted_sites = sites[order]
        elem_t = index_t = values_t = None
        if elements is not None:
            sorted_elements = elements[order]
            flat = rows * plan.numel[sorted_sites] + plan.offsets[sorted_sites] + sorted_elements
            elem_t = torch.from_numpy(sorted_elements).to(device)
            index_t = torch.from_numpy(flat).to(device)
            values = self.error_model.replacement(Draws(self.seed, ids[order], None, cache, order))
            values_t = None if values is None else values.to(device)
        block = BlockFaults(
            n_sites,
            bounds.tolist(),
            torch.from_numpy(rows).to(device),
            ids[order],
            order,
            cache,
            elem_t,
            index_t,
            values_t,
        )
        sample_t = torch.from_numpy(samples).to(device)
        preds = []
        try:
            for forward, first in enumerate(range(0, m, bs)):
                self.injector.arm_block(block, forward)
                preds.append(self.model(self.inputs[sample_t[first : first + bs]]).argmax(dim=1))
        finally:
            self.injector.arm(None)
        out = _BlockOutcome(ids, samples, sites, elements, self.sites, block)
        out.pred = torch.cat(preds).cpu()
        out.labels, out.golden = self.labels[samples], self.golden[samples]
        return out

    def _weight_trial(self, t: int) -> dict[str, Any]:
        plan, spt, n = self.plan, self.config.samples_per_trial, len(self.inputs)
        ids = np.array([t])
        site_index = int(plan.site_of(self.seed, ids)[0])
        site = plan.sites[site_index]
        element = (
            int(plan.element_of(self.seed, ids, np.array([site_index]))[0])
            if self.scope == "element"
            else None
        )
        samples = plan.perm[(t * spt + np.arange(spt)) % n]
        with weight_fault(
            self.model, site, self.error_model, t, self.seed, element, self.scope
        ) as (orig, new):
            pred = self.model(self.inputs[samples]).argmax(dim=1).cpu()
        labels, golden = self.labels[samples], self.golden[samples]
        return {
            "trial": t,
            "block": -1,
            "site": str(site),
            "sample": int(samples[0]),
            "element": element,
            "original": orig,
            "corrupted": _num(new),
            "n_samples": spt,
            "n_correct": int((pred == labels).sum()),
            "n_flipped": int((pred != golden).sum()),
            "golden_correct": int((golden == labels).sum()),
        }


class _BlockOutcome:
    """Outcomes of a block of activation trials, kept as arrays until they are stored."""

    def __init__(self, ids, samples, sites, elements, names, block: BlockFaults) -> None:
        self.ids, self.samples, self.sites, self.elements, self.names = (
            ids,
            samples,
            sites,
            elements,
            names,
        )
        self.block = block
        self.pred = self.labels = self.golden = None

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """Original and corrupted value per trial (block order; NaN where not observed: scope
        `all`, or a site the forward never reached)."""
        block, m = self.block, len(self.ids)
        original, corrupted = np.full(m, np.nan), np.full(m, np.nan)
        if self.elements is not None:
            seen = block.reached_mask()
            where = block.positions[seen]
            original[where] = block.original.double().cpu().numpy()[seen]
            corrupted[where] = block.corrupted.double().cpu().numpy()[seen]
        return original, corrupted

    def rows(self) -> list[dict[str, Any]]:
        original, corrupted = self.values()
        correct = (self.pred == self.labels).numpy()
        flipped = (self.pred != self.golden).numpy()
        golden_ok = (self.golden == self.labels).numpy()
        return [
            {
                "trial": int(t),
                "block": -1,
                "site": self.names[self.sites[i]],
                "sample": int(self.samples[i]),
                "element": None if self.elements is None else int(self.elements[i]),
                "original": _num(original[i]),
                "corrupted": _num(corrupted[i]),
                "n_samples": 1,
                "n_correct": int(correct[i]),
                "n_flipped": int(flipped[i]),
                "golden_correct": int(golden_ok[i]),
            }
            for i, t in enumerate(self.ids)
        ]


def _num(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if np.isnan(x) else (x if np.isfinite(x) else float(np.sign(x)) * 3.4e38)


def run_campaign(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    config: CampaignConfig,
    store: str | Path | CampaignStore,
    progress: bool = False,
    on_block: Callable[[int, int], None] | None = None,
    lease_s: float = 600.0,
) -> CampaignResult:
    """Run (or resume, or help fill) a campaign; returns the summary of everything stored.

    The model runs in eval mode on the device of its parameters; its parameters and buffers are
    checked unchanged afterwards (an InjectionError if anything leaked).
    """
    store = store if isinstance(store, CampaignStore) else CampaignStore(store)
    error_model = parse_error_model(config.error_model)
    device = next(model.parameters()).device
    inputs, labels = inputs.to(device), labels.cpu()
    was_training = model.training
    model.eval()
    plan = plan_campaign(model, inputs, config)
    record = {**config.to_dict(), "data": _fingerprint(inputs, labels)}
    store.create(config.name, record, plan.planned, config.block_size)
    golden = golden_predictions(model, inputs)
    before = state_hash(model)
    owner, ran, started = owner_id(), 0, time.perf_counter()
    injector = (
        None
        if plan.weights_only
        else Injector(model, plan.sites, error_model, plan.shapes, config.scope, config.seed)
    )
    bar = tqdm(total=plan.planned, desc=config.name, disable=not progress, leave=False)
    try:
        with torch.no_grad(), injector if injector is not None else _null():
            runner = _Runner(model, inputs, labels, golden, plan, config, error_model, injector)
            while (claim := store.claim(config.name, owner, lease_s)) is not None:
                block, start, stop = claim
                rows = runner.block(start, stop)
                for row in rows:
                    row["block"] = block
                if store.complete(config.name, block, owner, rows):
                    ran += len(rows)
                    bar.update(len(rows))
                if on_block is not None:
                    on_block(block, len(rows))
                if config.adaptive and _converged(store, config):
                    store.skip_pending(config.name)
    finally:
        bar.close()
        model.train(was_training)
    if state_hash(model) != before:
        raise InjectionError(f"campaign {config.name!r} left the model changed; this is a bug")
    counts = store.block_counts(config.name)
    if counts["pending"] == 0 and counts["claimed"] == 0:
        store.set_status(config.name, "stopped" if counts["skipped"] else "done")
    result = campaign_result(store, config.name)
    result.trials_run_here, result.seconds = ran, time.perf_counter() - started
    return result


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


def _fingerprint(inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    x = inputs.detach().float().cpu()
    return {
        "n": len(x),
        "shape": list(x.shape[1:]),
        "sum": round(float(x.double().sum()), 3),
        "labels": int(labels.long().sum()),
    }


def _converged(store: CampaignStore, config: CampaignConfig) -> bool:
    overall = store.totals(config.name)["overall"]
    return should_stop(
        int(overall["critical"]),
        int(overall["trials"]),
        config.margin,
        config.confidence,
        config.min_trials,
    )


def campaign_result(store: CampaignStore | str | Path, name: str) -> CampaignResult:
    """Statistics of a stored campaign: critical rate (Wilson), accuracy drop (t), per site."""
    store = store if isinstance(store, CampaignStore) else CampaignStore(store)
    info = store.campaign(name)
    if info is None:
        raise InjectionError(f"no campaign {name!r} in store {store.url!r}")
    conf = info["config"]["confidence"]
    totals = store.totals(name)
    overall = totals["overall"]

    def summary(t: dict) -> dict:
        n = int(t["trials"])
        return {
            "trials": n,
            "critical": int(t["critical"]),
            "critical_rate": wilson_interval(int(t["critical"]), n, conf).to_dict(),
            "accuracy_drop": mean_interval_from_sums(
                t["drop_sum"], t["drop_sq"], n, conf
            ).to_dict(),
        }

    per_site = [{"site": s, **summary(t)} for s, t in totals["sites"].items()]
    samples = max(int(overall["samples"]), 1)
    head = summary(overall)
    return CampaignResult(
        name=name,
        store=store.url,
        status=info["status"],
        planned=info["planned"],
        trials=head["trials"],
        blocks=store.block_counts(name),
        error_model=info["config"]["error_model"],
        sites=list(info["config"]["sites"]),
        critical_rate=head["critical_rate"],
        accuracy_drop=head["accuracy_drop"],
        golden_accuracy=overall["golden_correct"] / samples,
        faulty_accuracy=overall["correct"] / samples,
        per_site=per_site,
    )
