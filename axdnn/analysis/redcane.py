"""ReD-CaNe: operation-wise resilience of (capsule) networks to noise, and the per-operation choice
of approximate multipliers (Marchisio, Mrazek, Hanif & Shafique, "ReD-CaNe: a systematic
methodology for resilience analysis and design of capsule networks under approximations",
DATE 2020).

1. Sweep: Gaussian noise is added to every output of one operation (all its sites at once, e.g.
   every routing iteration's softmax) with standard deviation NM (noise magnitude) and mean NA
   (noise average), both in units of a statistic of that output for the same sample
   (`relative_to`: its `std`, or `max_abs`, the half-range). Accuracy per point with a Wilson
   interval over samples x repeats.
2. Ranking: an operation tolerates the largest swept NM (at NA = 0) up to which the accuracy drop
   stays within the budget; ties by the mean drop over the sweep (Student-t interval over
   samples), the resilience score. Most resilient first.
3. Components: a multiplier's noise model is its error e = M[a, b] - a*b over all operand codes
   (uniform), relative to the product magnitude: NM = std(e) / rms(p) and, per product,
   NA = mean(e) / rms(p), where p is the product about the operands' zero points (mid-range for
   unsigned operands, as asymmetric quantization of centred data gives: the integer MAC
   subtracts the zero-point terms exactly, so the output scales with p, the error with e).
   Summed over an operation's K-term reduction with independent terms, the output noise has
   NM unchanged and NA grown by sqrt(K) (in units of the output's std).
   Each MAC-bearing operation gets the cheapest candidate whose NM (and NA, where means were
   swept) is within what the operation tolerates.
4. Confirmation: the chosen multipliers run with their real product tables through
   `axdnn.nn.approximate`; while the measured drop exceeds the budget, the operation with the
   least margin (multiplier NM / tolerated NM) moves to the cheapest candidate with at most half
   its NM (or exact), so a misjudged operation is repaired in a few rounds.

Cost of a multiplier: `axdnn.analysis.selection.multiplier_costs` (given costs, published power,
or the stated 1 - NMED proxy); the energy saving is the cost model's compute energy
(`axdnn.cost.estimate_energy`, int8 MACs) with each operation's multiplier energy scaled by its
cost relative to the exact multiplier.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from axdnn.analysis.accuracy import tensor_accuracy
from axdnn.analysis.selection import multiplier_costs
from axdnn.arith import get_multiplier
from axdnn.cost import count_ops
from axdnn.cost.energy import LayerPrecision, estimate_energy
from axdnn.errors import AxError, ConfigError, RedcaneError
from axdnn.inject import (
    AdditiveNoise,
    Site,
    golden_predictions,
    list_op_sites,
    mean_interval,
    wilson_interval,
)
from axdnn.inject.injector import predict_with_faults
from axdnn.nn import LayerSpec, Plan, approximate

DEFAULT_MAGNITUDES = (0.05, 0.1, 0.2, 0.5, 1.0)
RELATIVE = ("std", "max_abs")


@dataclass
class NoisePoint:
    """Accuracy with noise of magnitude NM and mean NA at one operation."""

    magnitude: float
    mean: float
    accuracy: float
    low: float
    high: float
    drop: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class OperationSweep:
    """One operation's sweep: its sites, MACs and noise points, and what it tolerates."""

    operation: str
    sites: list[str]
    macs: int
    points: list[NoisePoint]
    tolerated_magnitude: float
    tolerated_mean: float | None
    score: float
    score_low: float
    score_high: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ComponentChoice:
    """The multiplier chosen for one MAC-bearing operation (None: exact) and its noise model."""

    operation: str
    sites: list[str]
    macs: int
    multiplier: str | None
    noise_magnitude: float
    noise_mean: float
    relative_cost: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RedcaneResult:
    """JSON-ready outcome of a ReD-CaNe analysis."""

    relative_to: str
    magnitudes: list[float]
    means: list[float]
    budget: float
    samples: int
    repeats: int
    seed: int
    baseline_accuracy: float
    sweeps: list[OperationSweep]
    ranking: list[dict]
    cost_rule: str = ""
    costs: dict[str, float] = field(default_factory=dict)
    noise_models: dict[str, dict] = field(default_factory=dict)
    choices: list[ComponentChoice] = field(default_factory=list)
    plan: dict = field(default_factory=dict)
    confirmation: dict = field(default_factory=dict)
    energy: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def sweep(self, operation: str) -> OperationSweep:
        for s in self.sweeps:
            if s.operation == operation:
                return s
        raise RedcaneError(
            f"no sweep for operation {operation!r}; swept: {[s.operation for s in self.sweeps]}"
        )


def model_operations(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """The model's own `operations` map (friendly name -> site patterns, e.g. CapsNet's), or one
    operation per conv/linear layer and per MAC-bearing functional op."""
    own = getattr(model, "operations", None)
    if isinstance(own, Mapping) and own:
        return {str(k): tuple(v) for k, v in own.items()}
    return {}


def resolve_operations(
    model: nn.Module, operations: Mapping[str, Sequence[str]] | None, example: torch.Tensor
) -> dict[str, list[str]]:
    """Site names per operation: module names, or functional sites (`module.op#k`, globs such as
    `digit.softmax#*`) seen in one forward on `example`; a pattern matching nothing is an error."""
    ops = dict(operations or model_operations(model))
    functional = list(list_op_sites(model, example[:1]))
    modules = [n for n, _ in model.named_modules() if n]
    if not ops:
        macs = [r.name for r in count_ops(model, tuple(example.shape[1:])).layers if r.macs > 0]
        ops = {name: (name,) for name in macs}
    resolved: dict[str, list[str]] = {}
    for name, patterns in ops.items():
        if isinstance(patterns, str):
            patterns = (patterns,)
        sites: list[str] = []
        for pattern in patterns:
            pool = functional if "#" in pattern else modules
            hits = [s for s in pool if fnmatch.fnmatchcase(s, pattern)]
            if not hits:
                seen = ", ".join((functional if "#" in pattern else modules)[:20])
                raise RedcaneError(
                    f"operation {name!r}: pattern {pattern!r} matches no "
                    f"{'functional op' if '#' in pattern else 'module'}; the model has {seen}"
                )
            sites += [h for h in hits if h not in sites]
        resolved[name] = sites
    return resolved


def _check_grid(magnitudes, means, relative_to, budget, repeats) -> None:
    if relative_to not in RELATIVE:
        raise RedcaneError(f"relative_to={relative_to!r}; expected one of {RELATIVE}")
    if not magnitudes or any(not (m > 0 and math.isfinite(m)) for m in magnitudes):
        raise RedcaneError(f"noise magnitudes {list(magnitudes)} must be finite and > 0")
    if any(not math.isfinite(m) for m in means):
        raise RedcaneError(f"noise means {list(means)} must be finite numbers")
    if not 0 <= budget < 1:
        raise RedcaneError(f"accuracy budget {budget} must be a fraction in [0, 1)")
    if repeats < 1:
        raise RedcaneError(f"repeats={repeats}; expected >= 1")


def _point_seed(seed: int, op: int, point: int) -> int:
    return seed * 1_000_003 + op * 10_007 + point * 101


def sweep_operations(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    operations: Mapping[str, Sequence[str]] | None = None,
    *,
    magnitudes: Sequence[float] = DEFAULT_MAGNITUDES,
    means: Sequence[float] = (),
    relative_to: str = "std",
    budget: float = 0.01,
    repeats: int = 2,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
) -> RedcaneResult:
    """Steps 1 and 2 (module docstring): accuracy against NM (NA = 0) and, for each of `means`,
    against NA (NM = 0), per operation, with the resilience ranking."""
    _check_grid(magnitudes, means, relative_to, budget, repeats)
    model.eval()
    resolved = resolve_operations(model, operations, inputs)
    macs = {r.name: r.macs for r in count_ops(model, tuple(inputs.shape[1:])).layers}
    labels = labels.cpu()
    base = (golden_predictions(model, inputs, batch_size) == labels).numpy()
    grid = [(float(m), 0.0) for m in magnitudes] + [(0.0, float(a)) for a in means]
    bar = tqdm(total=len(resolved) * len(grid), desc="redcane sweep", disable=not progress)
    sweeps = []
    for oi, (name, sites) in enumerate(resolved.items()):
        correct = np.zeros((len(grid), repeats, len(labels)), dtype=bool)
        for pi, (nm, na) in enumerate(grid):
            noise = AdditiveNoise(std=nm, mean=na, relative_to=relative_to)
            for r in range(repeats):
                pred = predict_with_faults(
                    model,
                    inputs,
                    [Site(s) for s in sites],
                    noise,
                    _point_seed(seed, oi, pi),
                    r * len(labels),
                    batch_size,
                )
                correct[pi, r] = (pred == labels).numpy()
            bar.update(1)
        sweeps.append(_summarise(name, sites, macs, grid, correct, base, budget))
    bar.close()
    ranking = rank_operations(sweeps)
    return RedcaneResult(
        relative_to,
        [float(m) for m in magnitudes],
        [float(a) for a in means],
        float(budget),
        len(labels),
        repeats,
        seed,
        float(base.mean()),
        sweeps,
        ranking,
    )


def _summarise(name, sites, macs, grid, correct, base, budget) -> OperationSweep:
    baseline = float(base.mean())
    points = []
    for (nm, na), c in zip(grid, correct, strict=True):
        ci = wilson_interval(int(c.sum()), c.size)
        points.append(NoisePoint(nm, na, ci.estimate, ci.low, ci.high, baseline - ci.estimate))
    magnitude_points = [(p.magnitude, p) for p in points if p.mean == 0.0 and p.magnitude > 0]
    mean_points = [(abs(p.mean), p) for p in points if p.magnitude == 0.0]
    per_sample = base.astype(float) - correct[: len(magnitude_points)].mean(axis=(0, 1))
    score = mean_interval(per_sample)
    return OperationSweep(
        name,
        list(sites),
        int(sum(macs.get(s, 0) for s in sites)),
        points,
        _tolerated(magnitude_points, budget),
        _tolerated(mean_points, budget) if mean_points else None,
        score.estimate,
        score.low,
        score.high,
    )


def _tolerated(points: list[tuple[float, NoisePoint]], budget: float) -> float:
    """The largest value up to which every swept point's drop is within the budget (0: none)."""
    best = 0.0
    for value, point in sorted(points, key=lambda vp: vp[0]):
        if point.drop > budget:
            break
        best = value
    return best


def rank_operations(sweeps: Sequence[OperationSweep]) -> list[dict]:
    """Most resilient first: larger tolerated NM, then smaller mean drop."""
    order = sorted(sweeps, key=lambda s: (-s.tolerated_magnitude, s.score, s.operation))
    return [
        {
            "operation": s.operation,
            "rank": i + 1,
            "tolerated_magnitude": s.tolerated_magnitude,
            "tolerated_mean": s.tolerated_mean,
            "score": s.score,
            "score_low": s.score_low,
            "score_high": s.score_high,
        }
        for i, s in enumerate(order)
    ]


def compare_groups(
    result: RedcaneResult, first: Sequence[str], second: Sequence[str]
) -> dict[str, float | bool]:
    """Whether the operations in `first` are more resilient than those in `second`: a lower mean
    resilience score (mean accuracy drop over the sweep), with each group's mean tolerated NM."""
    groups = []
    for names in (first, second):
        sweeps = [result.sweep(n) for n in names]
        if not sweeps:
            raise RedcaneError("compare_groups needs at least one operation per group")
        groups.append(
            (
                float(np.mean([s.score for s in sweeps])),
                float(np.mean([s.tolerated_magnitude for s in sweeps])),
            )
        )
    (score_a, tol_a), (score_b, tol_b) = groups
    return {
        "first_score": score_a,
        "second_score": score_b,
        "first_tolerated_magnitude": tol_a,
        "second_tolerated_magnitude": tol_b,
        "first_more_resilient": bool(score_a < score_b),
    }


def _centred(values: torch.Tensor, signed: bool) -> torch.Tensor:
    """Operand values about their zero point: 0 for signed operands, mid-range for unsigned ones
    (what asymmetric quantization of centred data gives)."""
    return values.double() if signed else values.double() - (int(values.max()) + 1) / 2


def multiplier_noise(spec: str) -> dict[str, float]:
    """NM = std(e) / rms(product) and per-product NA = mean(e) / rms(product) of a multiplier,
    over all operand codes, the products taken about the operands' zero points (module
    docstring, step 3)."""
    m = get_multiplier(spec)
    a = _centred(m.a_values(), m.a_signed)
    b = _centred(m.b_values(), m.b_signed)
    err = m.error_table().double()
    rms = float((a[:, None] * b[None, :]).square().mean().sqrt())
    if rms == 0:
        raise RedcaneError(f"multiplier {spec!r} has no non-zero products")
    return {
        "magnitude": float(err.std(correction=0)) / rms,
        "mean": float(err.mean()) / rms,
    }


def _reduction(model: nn.Module, sites: Sequence[str], shape: tuple[int, ...]) -> float:
    """Mean reduction length K (MACs per output element) over an operation's MAC records."""
    records = {r.name: r for r in count_ops(model, shape).layers}
    ks = [
        records[s].macs / max(records[s].output_elems, 1)
        for s in sites
        if s in records and records[s].macs
    ]
    return float(np.mean(ks)) if ks else 1.0


def choose_components(
    result: RedcaneResult,
    model: nn.Module,
    candidates: Sequence[str],
    input_shape: tuple[int, ...],
    *,
    exact: str = "exact@u8",
    costs: Mapping[str, float] | None = None,
) -> list[ComponentChoice]:
    """Step 3: for each MAC-bearing operation, the cheapest candidate whose noise model is within
    the operation's tolerated NM (and NA, where means were swept); fills `result`'s cost rule,
    costs, noise models and choices."""
    if not candidates:
        raise RedcaneError("component choice needs at least one candidate multiplier")
    specs = list(dict.fromkeys([exact, *candidates]))
    try:
        cost, rule = multiplier_costs(specs, costs)
    except AxError as err:
        raise RedcaneError(f"multiplier costs: {err}") from None
    noise = {s: multiplier_noise(s) for s in specs}
    order = sorted(candidates, key=lambda s: (cost[s], s))
    choices = []
    for sweep in result.sweeps:
        if sweep.macs == 0:
            continue
        k = _reduction(model, sweep.sites, input_shape)
        pick = _cheapest(order, noise, sweep, math.sqrt(k))
        chosen = pick if pick is not None and cost[pick] < cost[exact] else None
        spec = chosen or exact
        choices.append(
            ComponentChoice(
                sweep.operation,
                sweep.sites,
                sweep.macs,
                chosen,
                noise[spec]["magnitude"],
                noise[spec]["mean"] * math.sqrt(k),
                cost[spec] / cost[exact],
            )
        )
    result.cost_rule, result.costs = rule, {s: cost[s] for s in specs}
    result.noise_models, result.choices = noise, choices
    return choices


def _cheapest(order, noise, sweep: OperationSweep, growth: float) -> str | None:
    for spec in order:
        fits = noise[spec]["magnitude"] <= sweep.tolerated_magnitude
        if sweep.tolerated_mean is not None:
            fits = fits and abs(noise[spec]["mean"]) * growth <= sweep.tolerated_mean
        if fits:
            return spec
    return None


def choice_plan(choices: Sequence[ComponentChoice]) -> Plan:
    """A plan naming every chosen operation's sites (layers or functional sites)."""
    layers = {
        s: LayerSpec(multiplier=c.multiplier) for c in choices if c.multiplier for s in c.sites
    }
    return Plan(layers=layers)


def functional_plans_supported() -> bool:
    """Whether `axdnn.nn.approximate` takes functional sites (`matmul#0`) as plan targets."""

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3, 3))

        def forward(self, x):
            return torch.matmul(x, self.w)

    try:
        plan = Plan(layers={"matmul#0": LayerSpec(multiplier="exact@u8")})
        approximate(Probe(), plan, torch.rand(2, 3, 3))
    except ConfigError:
        return False
    return True


def _split_plan(choices, functional_ok: bool) -> tuple[list[ComponentChoice], list[str]]:
    """Choices the current plan API can simulate, and the operations it cannot."""
    if functional_ok:
        return list(choices), []
    kept, left = [], []
    for c in choices:
        functional = [s for s in c.sites if "#" in s]
        (left if functional and c.multiplier else kept).append(c)
    return kept, [c.operation for c in left]


def confirm_choices(
    result: RedcaneResult,
    model: nn.Module,
    calibration: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    candidates: Sequence[str],
    max_rounds: int = 12,
    seed: int = 0,
) -> dict:
    """Step 4: simulate the chosen multipliers with their real tables; back off the operation
    with the least margin until the measured drop is within the budget. Updates the choices."""
    functional_ok = functional_plans_supported()
    baseline = tensor_accuracy(model, inputs, labels)
    safer = sorted(candidates, key=lambda s: (result.noise_models[s]["magnitude"], s))
    rounds = []
    for _ in range(max_rounds + 1):
        runnable, unconfirmed = _split_plan(result.choices, functional_ok)
        plan = choice_plan(runnable)
        hits = _real_hits(model, plan, calibration, inputs, labels, seed)
        ci = wilson_interval(hits, len(labels))
        drop = baseline - ci.estimate
        rounds.append({"plan": plan.model_dump(), "accuracy": ci.estimate, "drop": drop})
        if drop <= result.budget or not _back_off(result, runnable, safer):
            break
    result.plan = choice_plan(result.choices).model_dump()
    result.confirmation = {
        "baseline_accuracy": baseline,
        "accuracy": ci.estimate,
        "low": ci.low,
        "high": ci.high,
        "drop": drop,
        "within_budget": bool(drop <= result.budget),
        "samples": len(labels),
        "rounds": rounds,
        "functional_sites_simulated": functional_ok,
        "unconfirmed_operations": unconfirmed,
    }
    if unconfirmed:
        result.notes.append(
            "axdnn.nn.approximate does not take functional sites yet: operations "
            f"{', '.join(unconfirmed)} keep their noise-model choice unconfirmed"
        )
    return result.confirmation


def _real_hits(model, plan: Plan, calibration, inputs, labels, seed: int) -> int:
    net = approximate(model, plan, calibration, seed=seed) if plan.layers else model
    pred = golden_predictions(net, inputs)
    return int((pred == labels.cpu()).sum())


def _back_off(result: RedcaneResult, runnable: Sequence[ComponentChoice], safer) -> bool:
    """Move the least-margin approximated operation to the cheapest candidate with at most half
    its NM (or exact); False when every operation is already exact."""
    active = [c for c in runnable if c.multiplier is not None]
    if not active:
        return False
    tol = {s.operation: s.tolerated_magnitude for s in result.sweeps}
    worst = max(active, key=lambda c: c.noise_magnitude / max(tol[c.operation], 1e-12))
    current = result.noise_models[worst.multiplier]["magnitude"]
    exact = _exact_spec(result)
    better = [
        s
        for s in safer
        if result.noise_models[s]["magnitude"] <= current / 2
        and result.costs[s] < result.costs[exact]
    ]
    better.sort(key=lambda s: (result.costs[s], s))
    worst.multiplier = better[0] if better else None
    spec = worst.multiplier or exact
    worst.noise_magnitude = result.noise_models[spec]["magnitude"]
    worst.relative_cost = result.costs[spec] / result.costs[exact]
    return True


def _exact_spec(result: RedcaneResult) -> str:
    return next(iter(result.costs))


def energy_saving(
    result: RedcaneResult, model: nn.Module, input_shape: tuple[int, ...]
) -> dict[str, float]:
    """Compute energy (int8 MACs, `axdnn.cost.estimate_energy`) with the chosen multipliers
    against all-exact, per sample; fills `result.energy`."""
    scale = {s: c.relative_cost for c in result.choices for s in c.sites}
    report = count_ops(model, input_shape)

    def precision(name: str) -> LayerPrecision:
        return LayerPrecision(8, 8, 32, "int", mul_energy_scale=scale.get(name, 1.0))

    exact = estimate_energy(report, LayerPrecision.integer(8, 8, 32), memory="none")
    approx = estimate_energy(report, precision, memory="none")
    saving = 1.0 - approx.total_compute_pj / max(exact.total_compute_pj, 1e-30)
    result.energy = {
        "exact_compute_pj": exact.total_compute_pj,
        "approx_compute_pj": approx.total_compute_pj,
        "saving": saving,
        "rule": result.cost_rule,
    }
    return result.energy


def redcane(
    model: nn.Module,
    calibration: torch.Tensor,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    operations: Mapping[str, Sequence[str]] | None = None,
    candidates: Sequence[str] = (),
    costs: Mapping[str, float] | None = None,
    exact: str = "exact@u8",
    confirm: bool = True,
    **sweep_options,
) -> RedcaneResult:
    """The whole methodology: sweep, rank, choose multipliers (when `candidates` are given),
    confirm by table simulation and price the choice."""
    result = sweep_operations(model, inputs, labels, operations, **sweep_options)
    if candidates:
        shape = tuple(inputs.shape[1:])
        choose_components(result, model, candidates, shape, exact=exact, costs=costs)
        if confirm:
            seed = sweep_options.get("seed", 0)
            confirm_choices(
                result, model, calibration, inputs, labels, candidates=candidates, seed=seed
            )
        energy_saving(result, model, shape)
    return result
