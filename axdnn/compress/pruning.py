"""Pruning: unstructured magnitude masks (per layer or global) and structured filter/channel
pruning that really slims the model, by wrapping Torch-Pruning's dependency graph and MetaPruner
with axdnn's criteria as importances.

Torch-Pruning traces the model once and groups every coupled channel (residual additions,
concatenations, depthwise groups, flattens into linear layers), so whole groups are removed
together and the result is an ordinary, smaller nn.Module. The layers that produce the model's
outputs are never pruned (their width is the number of classes).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn
from tqdm.auto import tqdm

from axdnn.cost import count_ops
from axdnn.errors import CompressionError
from axdnn.models.checkpoint import layer_shapes
from axdnn.runtime import eval_mode

CRITERIA = ("l1", "l2", "bn", "taylor", "significance")
"""Structured criteria: filter L1/L2 norm (Li et al. 2017), batch-norm scale (Liu et al. 2017,
network slimming), first-order Taylor (Molchanov et al. 2019), axdnn significance scores."""
PRUNABLE = (nn.modules.conv._ConvNd, nn.Linear)
Finetune = Callable[[nn.Module, int], None]


@dataclass
class LayerWidth:
    """Output channels of one conv/linear layer before and after pruning."""

    name: str
    before: int
    after: int


@dataclass
class PruneRecord:
    """What structured pruning did: criterion, ratio, steps, per-layer widths, and the MACs and
    parameters of the model before and after (from the cost model)."""

    criterion: str
    ratio: float
    global_pruning: bool
    steps: int
    input_shape: tuple[int, ...]
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    layers: list[LayerWidth] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    layer_shapes: dict[str, dict[str, int]] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    @property
    def macs_ratio(self) -> float:
        """MACs of the original over MACs of the pruned model (2.0: half the work)."""
        return self.macs_before / max(self.macs_after, 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["macs_ratio"] = self.macs_ratio
        d["params_ratio"] = self.params_before / max(self.params_after, 1)
        return d


class SignificanceImportance(tp.importance.Importance):
    """Per-filter scores (higher = more important, e.g. significance accuracy drops) as a
    Torch-Pruning importance; groups without scores fall back to `fallback` (mean-normalised)."""

    def __init__(self, model: nn.Module, scores: Mapping[str, Sequence[float]], fallback=None):
        names = {id(m): n for n, m in model.named_modules()}
        self.scores = {names.get(id(m)): s for m, s in _by_module(model, scores).items()}
        self.names = names
        self.fallback = fallback or tp.importance.MagnitudeImportance(p=1)

    def __call__(self, group) -> torch.Tensor | None:
        total, hits = torch.zeros(len(group[0].idxs)), 0
        for i, (dep, idxs) in enumerate(group):
            name, root = self.names.get(id(dep.layer)), group[i].root_idxs
            if dep.pruning_fn != tp.prune_conv_out_channels or name not in self.scores:
                continue
            if any(r is None for r in root):
                continue
            score = torch.as_tensor(self.scores[name], dtype=torch.float32)[list(idxs)]
            total.scatter_add_(0, torch.as_tensor(root, dtype=torch.long), score)
            hits += 1
        if not hits:
            imp = self.fallback(group)
            return None if imp is None else imp / imp.mean().clamp_min(1e-12)
        total = total / hits
        return total / total.abs().mean().clamp_min(1e-12)


def _by_module(model: nn.Module, scores: Mapping[str, Sequence[float]]) -> dict:
    modules = dict(model.named_modules())
    out = {}
    for name, values in scores.items():
        m = modules.get(name)
        if not isinstance(m, nn.modules.conv._ConvNd) or len(values) != m.out_channels:
            width = getattr(m, "out_channels", None)
            raise CompressionError(
                f"significance scores for layer {name!r}: {len(values)} values, but the model's "
                f"layer is {type(m).__name__ if m is not None else 'missing'} with "
                f"{width} filters; expected one score per filter of a conv layer"
            )
        out[m] = list(values)
    return out


def importance(
    criterion: str, model: nn.Module | None = None, scores: Mapping | None = None
) -> tp.importance.Importance:
    """The Torch-Pruning importance of an axdnn criterion (see CRITERIA)."""
    if criterion == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if criterion == "l2":
        return tp.importance.MagnitudeImportance(p=2)
    if criterion == "bn":
        return tp.importance.BNScaleImportance()
    if criterion == "taylor":
        return tp.importance.TaylorImportance()
    if criterion == "significance":
        if model is None or not scores:
            raise CompressionError(
                "criterion 'significance' needs per-filter scores {layer: [score per filter]} "
                "(e.g. from axdnn.analysis.filter_significance)"
            )
        return SignificanceImportance(model, scores)
    raise CompressionError(f"unknown pruning criterion {criterion!r}; expected one of {CRITERIA}")


@torch.no_grad()
def output_layers(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """The conv/linear layers whose outputs are the model's outputs (the classifier): the last
    one to run in a forward pass."""
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, _a, _o: order.append(mod))
        for m in model.modules()
        if isinstance(m, PRUNABLE)
    ]
    try:
        with eval_mode(model):
            model(example)
    finally:
        for h in hooks:
            h.remove()
    return order[-1:]


def _check_ratio(ratio: float, what: str = "pruning ratio") -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio < 1:
        raise CompressionError(f"{what} {ratio!r} must be a number in [0, 1) (0.5: half)")
    return float(ratio)


def _widths(model: nn.Module) -> dict[str, int]:
    return {
        n: m.out_channels if isinstance(m, nn.modules.conv._ConvNd) else m.out_features
        for n, m in model.named_modules()
        if isinstance(m, PRUNABLE)
    }


def _taylor_grads(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor] | None) -> None:
    if data is None:
        raise CompressionError("criterion 'taylor' needs data=(inputs, labels) for gradients")
    model.zero_grad(set_to_none=True)
    with eval_mode(model):
        F.cross_entropy(model(data[0]), data[1]).backward()


def _by_name(model: nn.Module, ratios: Mapping[str, float] | None) -> dict | None:
    if not ratios:
        return None
    modules = dict(model.named_modules())
    missing = [n for n in ratios if not isinstance(modules.get(n), PRUNABLE)]
    if missing:
        raise CompressionError(
            f"per-layer pruning ratios name {missing}, which are not conv/linear layers of the "
            f"model; layers: {sorted(_widths(model))}"
        )
    return {modules[n]: _check_ratio(r, f"pruning ratio of {n!r}") for n, r in ratios.items()}


def prune_structured(
    model: nn.Module,
    input_shape: Sequence[int],
    ratio: float = 0.5,
    criterion: str = "l1",
    *,
    global_pruning: bool = False,
    ratios: Mapping[str, float] | None = None,
    ignored: Sequence[str] = (),
    scores: Mapping[str, Sequence[float]] | None = None,
    data: tuple[torch.Tensor, torch.Tensor] | None = None,
    steps: int = 1,
    finetune: Finetune | None = None,
    round_to: int | None = None,
    progress: bool = False,
) -> tuple[nn.Module, PruneRecord]:
    """Remove `ratio` of the channels of every prunable group (or `ratios` per layer name) and
    return a slimmed copy with its record; the original is untouched. With `steps > 1` the
    ratio is reached in equal steps, calling `finetune(model, step)` after each one. A model's
    `pruning_ignored` (layer names) adds to `ignored`: layers whose outputs a reshape couples in
    ways the dependency graph cannot follow (attention heads, the residual width)."""
    ratio = _check_ratio(ratio)
    if criterion not in CRITERIA:
        raise CompressionError(f"unknown pruning criterion {criterion!r}; expected {CRITERIA}")
    if steps < 1 or (criterion == "significance" and steps > 1):
        raise CompressionError(
            f"steps={steps!r}: need >= 1, and 1 with criterion 'significance' (its scores "
            "name the original filters, which move once some are removed)"
        )
    shape = tuple(int(s) for s in input_shape)
    work = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():  # a model that builds its layers from its first input builds them now
        work(torch.zeros(1, *shape))
    before = count_ops(work, shape)
    widths = _widths(work)
    example = torch.zeros(1, *shape)
    modules = dict(work.named_modules())
    ignored = (*ignored, *getattr(work, "pruning_ignored", ()))
    keep = output_layers(work, example) + [modules[n] for n in ignored if n in modules]
    names = {id(m): n for n, m in work.named_modules()}
    pruner = _pruner(work, example, ratio, criterion, scores, global_pruning, ratios, keep, steps,
                     round_to)  # fmt: skip
    history = []
    for step in tqdm(range(steps), desc="prune", disable=not progress):
        if criterion == "taylor":
            _taylor_grads(work, data)
        try:
            pruner.step()
        except (RuntimeError, ValueError, IndexError, KeyError) as err:
            raise CompressionError(
                f"Torch-Pruning failed on {type(model).__name__} (criterion {criterion!r}, "
                f"ratio {ratio}): {type(err).__name__}: {err}"
            ) from err
        work.zero_grad(set_to_none=True)
        _check_runs(work, example, model)
        history.append({"step": step + 1, "params": sum(p.numel() for p in work.parameters())})
        if finetune is not None:
            finetune(work, step + 1)
    after = count_ops(work.eval(), shape)
    final = _widths(work)
    record = PruneRecord(
        criterion, ratio, global_pruning, steps, shape, before.total_macs, after.total_macs,
        before.total_params, after.total_params,
        [LayerWidth(n, w, final[n]) for n, w in widths.items()],
        [names[id(m)] for m in keep], layer_shapes(work), history,
    )  # fmt: skip
    return work, record


def _pruner(work, example, ratio, criterion, scores, global_pruning, ratios, keep, steps, round_to):
    imp = importance(criterion, work, scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Torch-Pruning's notes on unwrapped parameters
        try:
            return tp.pruner.MetaPruner(
                work, example, importance=imp, global_pruning=global_pruning,
                pruning_ratio=ratio, pruning_ratio_dict=_by_name(work, ratios),
                ignored_layers=keep, iterative_steps=steps, round_to=round_to,
            )  # fmt: skip
        except (RuntimeError, ValueError, IndexError, KeyError, TypeError) as err:
            raise CompressionError(
                f"Torch-Pruning could not trace {type(work).__name__}: {type(err).__name__}: {err}"
            ) from err


@torch.no_grad()
def _check_runs(work: nn.Module, example: torch.Tensor, original: nn.Module) -> None:
    try:
        work.eval()(example)
    except (RuntimeError, ValueError, IndexError) as err:
        raise CompressionError(
            f"the pruned {type(original).__name__} no longer runs: {err}; Torch-Pruning did not "
            "see a coupling of its channels (add the layer to `ignored`)"
        ) from err


# ---- unstructured magnitude pruning ----------------------------------------------------------


def prune_layer(module: nn.Module, ratio: float, *, structured: bool = False) -> torch.Tensor:
    """Zero `ratio` of one conv/linear layer's weights in place, the smallest |w| first (or,
    `structured`, its smallest-L1 output filters and their biases); returns the 0/1 mask.
    Real slimming needs the whole model's channel couplings: see `prune_structured`."""
    ratio = _check_ratio(ratio)
    if not isinstance(module, PRUNABLE):
        raise CompressionError(
            f"prune_layer: {type(module).__name__} is not a conv or linear layer"
        )
    w = module.weight.data
    if structured:
        norms = w.abs().flatten(1).sum(1)
        drop = torch.argsort(norms, stable=True)[: int(ratio * len(norms))]
        mask = torch.ones_like(w)
        mask[drop] = 0
        if module.bias is not None:
            module.bias.data[drop] = 0
    else:
        mask = _magnitude_mask(w.abs(), int(ratio * w.numel()))
    w.mul_(mask)
    return mask


def _magnitude_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    mask = torch.ones(scores.numel(), dtype=scores.dtype, device=scores.device)
    if count:
        mask[torch.argsort(scores.flatten(), stable=True)[:count]] = 0
    return mask.view_as(scores)


def prune_unstructured(
    model: nn.Module,
    ratio: float,
    scope: str = "layer",
    layers: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Zero `ratio` of the conv/linear weights in place by magnitude, in each layer (`layer`)
    or over all of them at once (`global`); returns {layer: mask} for `keep_masks`."""
    ratio = _check_ratio(ratio)
    if scope not in ("layer", "global"):
        raise CompressionError(f"pruning scope {scope!r}: expected 'layer' or 'global'")
    mods = {n: m for n, m in model.named_modules() if isinstance(m, PRUNABLE)}
    unknown = sorted(set(layers or ()) - set(mods))
    if unknown:
        raise CompressionError(f"layers {unknown} are not conv/linear layers of the model")
    chosen = {n: mods[n] for n in (layers or mods)}
    if scope == "layer":
        return {n: prune_layer(m, ratio) for n, m in chosen.items()}
    flat = torch.cat([m.weight.detach().abs().flatten() for m in chosen.values()])
    mask = _magnitude_mask(flat, int(ratio * flat.numel()))
    masks, start = {}, 0
    for n, m in chosen.items():
        part = mask[start : start + m.weight.numel()].view_as(m.weight)
        start += m.weight.numel()
        m.weight.data.mul_(part)
        masks[n] = part
    return masks


def keep_masks(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> Callable[[], None]:
    """Keep pruned weights at zero while fine-tuning: each masked layer re-applies its mask
    before every forward. Returns a function that removes the hooks."""
    modules = dict(model.named_modules())
    handles = []
    for name, mask in masks.items():

        def hook(mod, _args, mask=mask):
            with torch.no_grad():
                mod.weight.mul_(mask.to(mod.weight.device))

        handles.append(modules[name].register_forward_pre_hook(hook))
    return lambda: [h.remove() for h in handles]


def sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of zero weights in each conv/linear layer, and `total` over all of them."""
    out, zeros, total = {}, 0, 0
    for name, m in model.named_modules():
        if isinstance(m, PRUNABLE):
            z = int((m.weight == 0).sum())
            out[name] = z / m.weight.numel()
            zeros, total = zeros + z, total + m.weight.numel()
    out["total"] = zeros / max(total, 1)
    return out
