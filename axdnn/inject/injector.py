"""The injection machinery: hooks that corrupt activations per sample, and weight faults that are
always restored.

`Injector` installs one hook per activation site (forward hook, forward pre-hook, or an
`OpSites` callback for functional ops) for as long as it is entered. Before each forward the
caller `arm`s it with a `FaultPlan`: which batch rows get a fault at which site, at which element
(element scope) or over the whole region (scope `all`), and the trial ids that seed the error
model. Rows without a fault run untouched, so one forward serves many trials: one fault per sample.
Campaigns instead build one `BlockFaults` for many forwards (every array computed once, sorted by
forward and site) and `arm_block` it per forward, which costs one attribute write; each hook then
slices its own group and does one gather (the originals) and one scatter.

`weight_fault` corrupts weight elements in place and restores the saved values on exit, however
the block is left (exception, KeyboardInterrupt); `state_hash` checks that nothing leaked.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from axdnn.errors import InjectionError
from axdnn.inject.error_models import SCOPES, Draws, ErrorModel, StreamCache
from axdnn.inject.functional import OpSites
from axdnn.inject.sites import Site, check_site, region


@dataclass
class SiteFaults:
    """The faults one site receives in one forward: batch rows, element indices within the site
    region (None for scope `all`) and the trial ids that seed each row's draws. `index` (flat
    positions in the batch tensor) and `cache`/`positions` (the block's precomputed draws) are
    optional speed-ups that campaigns fill in."""

    rows: torch.Tensor
    trials: np.ndarray
    elements: torch.Tensor | None = None
    cache: StreamCache | None = None
    positions: np.ndarray | None = None
    index: torch.Tensor | None = None
    values: torch.Tensor | None = None

    def draws(
        self, seed: int, area: torch.Tensor | None, inputs: torch.Tensor | None = None
    ) -> Draws:
        return Draws(seed, self.trials, area, self.cache, self.positions, inputs)


@dataclass
class FaultPlan:
    """Per-site faults for one forward, plus what the hooks observed (element scope)."""

    faults: dict[int, SiteFaults]
    original: dict[int, torch.Tensor] = field(default_factory=dict)
    corrupted: dict[int, torch.Tensor] = field(default_factory=dict)


class BlockFaults:
    """The faults of a block of trials over several forwards, sorted by (forward, site).

    Group `g = forward * n_sites + site` holds the sorted positions `bounds[g]:bounds[g + 1]`;
    `rows` are batch rows within the forward, `trials` the trial ids, `positions` the trials'
    places in the block (for `cache`), `index` flat positions in the batch tensor and `values`
    precomputed replacements (element scope). Hooks write what they saw into `original` and
    `corrupted` (element scope, sorted order) and append their group to `reached`.
    """

    def __init__(
        self,
        n_sites: int,
        bounds: Sequence[int],
        rows: torch.Tensor,
        trials: np.ndarray,
        positions: np.ndarray,
        cache: StreamCache | None = None,
        elements: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> None:
        self.n_sites, self.bounds = n_sites, list(bounds)
        self.rows, self.trials, self.positions, self.cache = rows, trials, positions, cache
        self.elements, self.index, self.values = elements, index, values
        n = len(trials)
        device = rows.device
        self.original = torch.full((n,), float("nan"), device=device)
        self.corrupted = (
            values if values is not None else torch.full((n,), float("nan"), device=device)
        )
        self.reached: list[int] = []
        self.base = 0

    def site_faults(self, a: int, b: int) -> SiteFaults:
        """The group `a:b` as a SiteFaults (the general path of `corrupt_rows`)."""
        cut = slice(a, b)
        return SiteFaults(
            self.rows[cut],
            self.trials[cut],
            None if self.elements is None else self.elements[cut],
            self.cache,
            self.positions[cut],
            None if self.index is None else self.index[cut],
            None if self.values is None else self.values[cut],
        )

    def reached_mask(self) -> np.ndarray:
        """Bool per sorted position: whether its site ran (and so the fault was applied)."""
        mask = np.zeros(len(self.trials), dtype=bool)
        for g in self.reached:
            mask[self.bounds[g] : self.bounds[g + 1]] = True
        return mask


def corrupt_rows(
    tensor: torch.Tensor,
    faults: SiteFaults,
    model: ErrorModel,
    scope: str,
    seed: int,
    offset: int,
    size: int,
    inputs: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Apply `model` to the given rows of a batch tensor (in place on a contiguous tensor, which
    is returned); also returns the original and corrupted values in element scope. `inputs` is
    the batch's module input, passed (its faulty rows) to models that condition on it."""
    t = tensor if tensor.is_contiguous() else tensor.contiguous()
    if scope == "element":
        flat = t.view(-1)
        index = faults.index
        if index is None:
            index = faults.rows * (flat.numel() // t.shape[0]) + offset + faults.elements
        values = flat.index_select(0, index)
        new = faults.values
        if new is None:
            area = None
            if model.needs_region():
                area = t.view(t.shape[0], -1)[faults.rows, offset : offset + size]
            new = model.corrupt(values.unsqueeze(1), faults.draws(seed, area)).reshape(-1)
        new = new.to(flat.dtype)
        flat.index_copy_(0, index, new)
        return t, values, new
    flat = t.view(t.shape[0], -1)
    area = flat[faults.rows, offset : offset + size]
    rows_in = None
    if model.needs_input():
        if inputs is None:
            raise InjectionError(f"error model {model.spec!r} needs the module's input")
        rows_in = inputs[faults.rows]
    draws = faults.draws(seed, area, rows_in)
    flat[faults.rows, offset : offset + size] = model.corrupt(area, draws).to(flat.dtype)
    return t, None, None


class _ForwardWrap:
    """Wraps a module's forward through an instance attribute (cheaper than a forward hook,
    which sends every call down nn.Module's slow path); `remove()` restores it."""

    def __init__(self, module: nn.Module, after) -> None:
        self.module = module
        self.had_own = "forward" in module.__dict__
        self.original = module.forward
        original = self.original

        def forward(*args, **kwargs):
            return after(args, original(*args, **kwargs))

        module.forward = forward

    def remove(self) -> None:
        if self.had_own:
            self.module.forward = self.original
        else:
            del self.module.forward


def _may_alias(out: torch.Tensor, args) -> bool:
    """Whether corrupting `out` in place could change an input or another tensor: it is a view
    (of an input, a buffer, ...), an input itself, or the base of an input view. Exact for
    ordinary tensors (two tensors share storage only through views) and cheap for the fresh
    output of a conv or linear layer."""
    if out._is_view():
        return True
    for a in args:
        if a is out or (isinstance(a, torch.Tensor) and a._base is out):
            return True
    return False


class Injector:
    """Activation-site injection hooks on a model, armed per forward (see the module docstring).

    `error_model` is one model for every site or one per site; output sites wrap the module's
    forward, input sites use a forward pre-hook, functional sites an `OpSites` callback.
    """

    def __init__(
        self,
        model: nn.Module,
        sites: Sequence[Site],
        error_model: ErrorModel | Sequence[ErrorModel],
        shapes: Sequence[tuple[int, ...]],
        scope: str | None = None,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.sites = list(sites)
        models = (
            [error_model] * len(self.sites)
            if isinstance(error_model, ErrorModel)
            else list(error_model)
        )
        if len(models) != len(self.sites):
            raise InjectionError(
                f"{len(models)} error models for {len(self.sites)} sites; give one or one per site"
            )
        self.models = models
        self.scopes = [scope or m.default_scope for m in models]
        for sc in self.scopes:
            if sc not in SCOPES:
                raise InjectionError(f"unknown scope {sc!r}; expected one of {SCOPES}")
        if any(s.kind == "weight" for s in self.sites):
            raise InjectionError("Injector handles activation sites; use weight_fault for weights")
        for site, m in zip(self.sites, models, strict=True):
            if m.needs_input() and (site.kind != "output" or site.functional):
                raise InjectionError(
                    f"error model {m.spec!r} reads the input of the module it corrupts; put it "
                    f"at a module's output, not at {str(site)!r}"
                )
        self.regions = [
            region(shape, s.channel) for shape, s in zip(shapes, self.sites, strict=True)
        ]
        self.seed = seed
        self.plan: FaultPlan | None = None
        self.block: BlockFaults | None = None
        self._handles: list = []
        self._mode: OpSites | None = None

    def arm(self, plan: FaultPlan | None) -> None:
        """Set the faults of the next forward (None: run fault-free)."""
        self.plan, self.block = plan, None

    def arm_block(self, block: BlockFaults, forward: int) -> None:
        """Set the next forward's faults to forward `forward` of a campaign block."""
        block.base = forward * block.n_sites
        self.plan, self.block = None, block

    def _apply(self, index: int, tensor: torch.Tensor, args, clone: bool | None) -> torch.Tensor:
        """Corrupt `tensor` at site `index` as armed; `clone` True/False, or None to clone only
        if the tensor may alias one of `args`."""
        block = self.block
        if block is not None:
            return self._apply_block(block, index, tensor, args, clone)
        plan = self.plan
        faults = plan.faults.get(index) if plan is not None else None
        if faults is None or len(faults.rows) == 0:
            return tensor
        if clone or (clone is None and _may_alias(tensor, args)):
            tensor = tensor.clone()
        offset, size = self.regions[index]
        out, original, corrupted = corrupt_rows(
            tensor,
            faults,
            self.models[index],
            self.scopes[index],
            self.seed,
            offset,
            size,
            args[0] if args else None,
        )
        if original is not None:
            plan.original[index] = original
            plan.corrupted[index] = corrupted
        return out

    def _apply_block(self, block, index, tensor, args, clone) -> torch.Tensor:
        g = block.base + index
        a, b = block.bounds[g], block.bounds[g + 1]
        if a == b:
            return tensor
        block.reached.append(g)
        if clone or (clone is None and _may_alias(tensor, args)):
            tensor = tensor.clone()
        if self.scopes[index] == "element" and block.values is not None:
            # the common case: one gather of the originals, one scatter of the replacements
            t = tensor if tensor.is_contiguous() else tensor.contiguous()
            flat = t.view(-1)
            idx, values = block.index[a:b], block.values[a:b]
            original = block.original[a:b]
            if flat.dtype == original.dtype:
                torch.index_select(flat, 0, idx, out=original)
            else:
                original.copy_(flat.index_select(0, idx))
            if values.dtype != flat.dtype:
                values = values.to(flat.dtype)
            flat.index_copy_(0, idx, values)
            return t
        offset, size = self.regions[index]
        out, original, corrupted = corrupt_rows(
            tensor,
            block.site_faults(a, b),
            self.models[index],
            self.scopes[index],
            self.seed,
            offset,
            size,
            args[0] if args else None,
        )
        if original is not None:
            block.original[a:b] = original
            block.corrupted[a:b] = corrupted
        return out

    def _hooks(self, index: int, site: Site, module: nn.Module):
        if site.kind == "input":

            def pre(_module, args):
                new = self._apply(index, args[0], args, clone=True)
                return None if new is args[0] else (new, *args[1:])

            return module.register_forward_pre_hook(pre)
        apply = self._apply
        return _ForwardWrap(module, lambda args, out: apply(index, out, args, None))

    def __enter__(self) -> Injector:
        if self._handles or self._mode is not None:
            raise InjectionError("this Injector is already active; it cannot be entered twice")
        callbacks = {}
        for index, site in enumerate(self.sites):
            module = check_site(self.model, site)
            if site.functional:
                callbacks[site.target] = lambda t, i=index: self._apply(i, t, (), clone=True)
            else:
                self._handles.append(self._hooks(index, site, module))
        if callbacks:
            self._mode = OpSites(self.model, callbacks)
            self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._mode is not None:
            self._mode.__exit__(*exc)
            self._mode = None
        self.plan = self.block = None


@contextlib.contextmanager
def weight_fault(
    model: nn.Module,
    site: Site,
    error_model: ErrorModel,
    trial: int,
    seed: int = 0,
    element: int | None = None,
    scope: str | None = None,
) -> Iterator[tuple[float | None, float | None]]:
    """Corrupt a weight site for one trial (one element, or the whole region in scope `all`) and
    restore the exact previous values on exit. Yields (original, corrupted) in element scope."""
    module = check_site(model, site)
    weight: torch.Tensor = module.weight
    scope = scope or error_model.default_scope
    offset, size = region(tuple(weight.shape), site.channel)
    flat = weight.detach().view(-1)
    if scope == "element":
        if element is None or not 0 <= element < size:
            raise InjectionError(
                f"weight site {str(site)!r}: element {element} outside 0..{size - 1}"
            )
        cols = slice(offset + element, offset + element + 1)
    else:
        cols = slice(offset, offset + size)
    saved = flat[cols].clone()
    trials = np.array([trial])
    area = flat[offset : offset + size].reshape(1, -1)
    try:
        with torch.no_grad():
            new = error_model.corrupt(saved.reshape(1, -1).float(), Draws(seed, trials, area))
            flat[cols] = new.reshape(-1).to(flat.dtype)
        if scope == "element":
            yield float(saved[0]), float(new.reshape(-1)[0])
        else:
            yield None, None
    finally:
        with torch.no_grad():
            flat[cols] = saved


def state_hash(model: nn.Module) -> str:
    """sha256 of every parameter and buffer (names and bytes): equal before and after a campaign."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def predict_with_faults(
    model: nn.Module,
    inputs: torch.Tensor,
    sites: Sequence[Site],
    error_models: ErrorModel | Sequence[ErrorModel],
    seed: int = 0,
    trial_base: int = 0,
    batch_size: int = 256,
    scope: str | None = None,
) -> torch.Tensor:
    """Top-1 of every input with a fault at every given site at once (element scope: one random
    element per site and sample). Sample i is trial `trial_base + i`, so results are seeded."""
    from axdnn.inject.rng import trial_index
    from axdnn.inject.sites import site_shapes

    sites = list(sites)
    shapes = site_shapes(model, sites, inputs[:1])
    injector = Injector(model, sites, error_models, shapes, scope, seed)
    sizes = [region(shape, s.channel)[1] for shape, s in zip(shapes, sites, strict=True)]
    was_training = model.training
    model.eval()
    preds = []
    try:
        with injector:
            for first in range(0, len(inputs), batch_size):
                x = inputs[first : first + batch_size]
                trials = trial_base + first + np.arange(len(x))
                rows = torch.arange(len(x))
                faults = {}
                for i, size in enumerate(sizes):
                    elements = None
                    if injector.scopes[i] == "element":
                        elements = torch.from_numpy(
                            trial_index(seed, trials, 1 + 7 * (i + 1), size)
                        )
                    faults[i] = SiteFaults(rows, trials, elements)
                injector.arm(FaultPlan(faults))
                preds.append(model(x).argmax(dim=1).cpu())
    finally:
        model.train(was_training)
    return torch.cat(preds)
