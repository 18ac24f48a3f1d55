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
from axdnn.inject.error_models import (
    MODEL_STREAM,
    Draws,
    ErrorModel,
    StreamCache,
    parse_error_model,
)
from axdnn.inject.injector import BlockFaults, Injector, state_hash, weight_fault
from axdnn.inject.rng import trial_uniform, trial_uniforms
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
DRAW_STREAMS = (SITE_STREAM, ELEMENT_STREAM, MODEL_STREAM)  # what an element-scope trial draws
DRAW_CHUNK = 4096  # trials laid out per vectorised pass
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
        return self.site_from(trial_uniform(seed, trials, SITE_STREAM))

    def element_of(self, seed: int, trials: np.ndarray, sites: np.ndarray) -> np.ndarray:
        return self.element_from(trial_uniform(seed, trials, ELEMENT_STREAM), sites)

    def site_from(self, u: np.ndarray) -> np.ndarray:
        """Site index of each trial from its uniform draw of SITE_STREAM."""
        pick = np.searchsorted(self.cumulative, u * self.cumulative[-1], side="right")
        return np.minimum(pick, len(self.sites) - 1)

    def element_from(self, u: np.ndarray, sites: np.ndarray) -> np.ndarray:
        """Element of each trial's site region from its uniform draw of ELEMENT_STREAM."""
        sizes = self.sizes[sites]
        return np.minimum((u * sizes).astype(np.int64), sizes - 1)


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
    complete: bool = False
    """No block is pending or claimed: the figures are final. False while other workers still
    hold blocks (or some were never run): the figures cover only the trials stored so far."""

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


class BlockRunner:
    """Runs the trials of one block against a model (activation or weight sites); what
    `run_campaign` does per claimed block, without the storage."""

    def __init__(self, model, inputs, labels, golden, plan, config, error_model, injector):
        self.model, self.inputs, self.labels, self.golden = model, inputs, labels, golden
        self.plan, self.config, self.error_model, self.injector = (
            plan,
            config,
            error_model,
            injector,
        )
        labels, golden = labels.cpu().long(), golden.cpu().long()
        # per sample: label, fault-free top-1, fault-free correct (gathered for many blocks)
        self.truth = torch.stack([labels, golden, (labels == golden).long()])
        self.scope = config.scope or error_model.default_scope
        self.seed = config.seed
        self.sites = [str(s) for s in plan.sites]
        self._prepared: dict[tuple[int, int], tuple] = {}

    def block(self, start: int, stop: int) -> list[dict[str, Any]]:
        if self.plan.weights_only:
            return [self._weight_trial(t) for t in range(start, stop)]
        return self.activation_block(start, stop).rows()

    def activation_block(self, start: int, stop: int) -> _BlockOutcome:
        """Run activation trials start..stop-1 (a block), `batch_size` per forward, with every
        fault laid out in advance (`_prepare`); per forward the injector is re-armed with one
        attribute write and each hook with faults does one gather and one scatter."""
        block, ids, samples, sites, elements, truth, batches = self._prepare(start, stop)
        preds = []
        try:
            for forward, batch in enumerate(batches):
                self.injector.arm_block(block, forward)
                preds.append(self.model(self.inputs[batch]).argmax(dim=1))
        finally:
            self.injector.arm(None)
        out = _BlockOutcome(ids, samples, sites, elements, self.sites, block)
        out.pred, out.truth = torch.cat(preds).cpu(), truth
        return out

    def _prepare(self, start: int, stop: int) -> tuple:
        """The laid-out faults of block start..stop-1. Blocks are prepared up to DRAW_CHUNK
        trials at a time (this block and the next ones of the same size within the planned
        trials, which consecutive claims ask for next), in one vectorised pass; a prepared
        block is handed out once."""
        if (start, stop) not in self._prepared:
            size = stop - start
            ahead = min(DRAW_CHUNK // size, (self.plan.planned - start) // size)
            self._prepared = self._prepare_blocks(start, size, max(1, ahead))
        return self._prepared.pop((start, stop))

    def _prepare_blocks(self, start: int, size: int, count: int) -> dict[tuple[int, int], tuple]:
        """Lay out `count` consecutive blocks of `size` trials from `start`. Within a block the
        trials run ordered by site, so each forward reaches only one or two faulty sites (a
        trial's outcome does not depend on which rows share its batch: eval mode, one fault per
        row, and the injected tensor keeps its layout)."""
        plan, bs, n_sites = self.plan, self.config.batch_size, len(self.sites)
        device, m = self.inputs.device, size * count
        trial = np.arange(start, start + m)
        local = np.arange(m) % size  # position within its block
        row = local % bs  # batch row within its forward
        if self.scope == "element":  # site, element and the model's first stream in one pass
            u = trial_uniforms(self.seed, trial, DRAW_STREAMS)
            sites = plan.site_from(u[0])
        else:
            sites = plan.site_of(self.seed, trial)
        order = np.argsort((np.arange(m) // size) * n_sites + sites, kind="stable")
        ids, sites = trial[order], sites[order]
        elements = index = values = None
        if self.scope == "element":
            elements = plan.element_from(u[1][order], sites)
            cache = StreamCache(self.seed, ids, {0: u[2][order]})
            flat = row * plan.numel[sites] + plan.offsets[sites] + elements
            index = torch.from_numpy(flat).to(device)
            values = self.error_model.replacement(Draws(self.seed, ids, None, cache))
            values = None if values is None else values.to(device)
        else:
            cache = StreamCache(self.seed, ids)
        samples = plan.perm[ids % len(self.inputs)]
        sample_cpu = torch.from_numpy(samples)
        truth = self.truth[:, sample_cpu]
        sample_t = sample_cpu.to(device)
        per_block = -(-size // bs) * n_sites
        key = (np.arange(m) // size) * per_block + (local // bs) * n_sites + sites
        counts = np.bincount(key, minlength=count * per_block)
        groups: list[dict | None] = [None if values is None else {} for _ in range(count)]
        if values is not None:  # the group views of every block in one split
            full = np.flatnonzero(counts)
            cut = counts[full].tolist()
            pieces = zip(index.split(cut), values.split(cut), strict=True)
            for g, pair in zip(full.tolist(), pieces, strict=True):
                groups[g // per_block][g % per_block] = pair
        prepared = {}
        for k in range(count):
            a, b = k * size, (k + 1) * size
            cut = slice(a, b)
            block = BlockFaults(
                n_sites,
                counts[k * per_block : (k + 1) * per_block],
                row[cut],
                ids[cut],
                cache,
                a,
                None if elements is None else elements[cut],
                None if index is None else index[cut],
                None if values is None else values[cut],
                groups[k],
                device,
            )
            prepared[(start + a, start + b)] = (
                block,
                ids[cut],
                samples[cut],
                sites[cut],
                None if elements is None else elements[cut],
                truth[:, cut],
                sample_t[cut].split(bs),
            )
        return prepared

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
    """Outcomes of a block of activation trials (in the order they ran, which is the block's
    sorted order), kept as arrays until they are stored."""

    def __init__(self, ids, samples, sites, elements, names, block: BlockFaults) -> None:
        self.ids, self.samples, self.sites, self.elements, self.names = (
            ids,
            samples,
            sites,
            elements,
            names,
        )
        self.block = block
        self.pred: torch.Tensor | None = None  # faulty top-1 per trial
        self.truth: torch.Tensor | None = None  # label, fault-free top-1, fault-free correct

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """Original and corrupted value per trial (NaN where not observed: scope `all`, or a
        site the forward never reached)."""
        if self.elements is None:
            return np.full(len(self.ids), np.nan), np.full(len(self.ids), np.nan)
        return self.block.observed()

    def outcomes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per trial: faulty top-1 correct, top-1 flipped (critical), fault-free top-1 correct."""
        same = (self.truth[:2] == self.pred).numpy()
        return same[0], ~same[1], self.truth[2].numpy().astype(bool)

    def rows(self) -> list[dict[str, Any]]:
        original, corrupted = self.values()
        correct, flipped, golden_ok = self.outcomes()
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
    threads, checked = torch.get_num_threads(), 0.0
    try:
        with torch.no_grad(), injector if injector is not None else _null():
            runner = BlockRunner(model, inputs, labels, golden, plan, config, error_model, injector)
            while (claim := store.claim(config.name, owner, lease_s)) is not None:
                if time.perf_counter() - checked > WORKER_CHECK_S:
                    share_cores(threads, store.active_workers(config.name, lease_s))
                    checked = time.perf_counter()
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
        torch.set_num_threads(threads)
    if state_hash(model) != before:
        raise InjectionError(f"campaign {config.name!r} left the model changed; this is a bug")
    counts = store.block_counts(config.name)
    if counts["pending"] == 0 and counts["claimed"] == 0:
        store.set_status(config.name, "stopped" if counts["skipped"] else "done")
    result = campaign_result(store, config.name)
    result.trials_run_here, result.seconds = ran, time.perf_counter() - started
    return result


WORKER_CHECK_S = 0.5
"""How often a worker counts the others sharing its campaign (a store query)."""


def share_cores(threads: int, workers: int) -> None:
    """Run on `threads` / `workers` torch threads (at least 1) while other workers share the
    campaign: each worker's threads would otherwise compete for the same cores (two workers with
    torch's default threads took 2.9x one worker's time on 2 cores; with 1 thread each, 0.88x)."""
    wanted = max(1, threads // max(workers, 1))
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


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
    counts = store.block_counts(name)
    return CampaignResult(
        name=name,
        store=store.url,
        status=info["status"],
        planned=info["planned"],
        trials=head["trials"],
        blocks=counts,
        error_model=info["config"]["error_model"],
        sites=list(info["config"]["sites"]),
        critical_rate=head["critical_rate"],
        accuracy_drop=head["accuracy_drop"],
        golden_accuracy=overall["golden_correct"] / samples,
        faulty_accuracy=overall["correct"] / samples,
        per_site=per_site,
        complete=counts.get("pending", 0) == 0 and counts.get("claimed", 0) == 0,
    )
