"""The injection machinery: hooks that corrupt activations per sample, and weight faults that are
always restored.

`Injector` installs one hook per activation site (forward hook, forward pre-hook, or an
`OpSites` callback for functional ops) for as long as it is entered. Before each forward the
caller `arm`s it with a `FaultPlan`: which batch rows get a fault at which site, at which element
(element scope) or over the whole region (scope `all`), and the trial ids that seed the error
model. Rows without a fault run untouched, so one forward serves many trials: one fault per sample.
Campaigns instead build one `BlockFaults` for many forwards (every array computed once, sorted by
forward and site, and cut into per-group views in one call) and `arm_block` it per forward, which
costs one attribute write; each hook then picks its group's views and does one `take` (the
originals) and one `put_` (the replacements), with no slicing or allocation beyond the gather.

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
from axdnn.runtime import TemporaryHooks


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

    Group `g = forward * n_sites + site` has `counts[g]` faults, at the sorted positions
    `bounds[g]:bounds[g + 1]`. Per sorted position (numpy): `rows` (batch row in its forward),
    `trials` (trial id) and `elements` (element of the site region); `cache` holds the trials'
    uniform streams from position `cache_offset` on. Tensors on `device`: `index` (flat
    row-major position in the batch tensor) and `values` (precomputed replacements, element
    scope). With both, `groups` maps each group that has faults to its (index, values) views
    (given, or cut here in one call). Each hook records in `seen[g]` what it saw: (original,
    corrupted) in element scope (corrupted None when it is `values`), (None, None) in scope
    `all`.
    """

    def __init__(
        self,
        n_sites: int,
        counts: np.ndarray,
        rows: np.ndarray,
        trials: np.ndarray,
        cache: StreamCache | None = None,
        cache_offset: int = 0,
        elements: np.ndarray | None = None,
        index: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
        groups: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.n_sites, self.bounds = n_sites, [0, *np.cumsum(counts).tolist()]
        self.rows, self.trials, self.cache, self.cache_offset = rows, trials, cache, cache_offset
        self.elements, self.index, self.values = elements, index, values
        self.device = torch.device(device)
        if groups is None and index is not None and values is not None:
            full = np.flatnonzero(counts)
            cut = counts[full].tolist()
            views = zip(index.split(cut), values.split(cut), strict=True)
            groups = dict(zip(full.tolist(), views, strict=True))
        self.groups = groups
        self.seen: dict[int, tuple[torch.Tensor | None, torch.Tensor | None]] = {}
        self.base = 0

    def site_faults(self, a: int, b: int) -> SiteFaults:
        """The group `a:b` as a SiteFaults (the general path of `corrupt_rows`)."""
        cut = slice(a, b)
        elements = None
        if self.elements is not None:
            elements = torch.from_numpy(self.elements[cut]).to(self.device)
        return SiteFaults(
            torch.from_numpy(self.rows[cut]).to(self.device),
            self.trials[cut],
            elements,
            self.cache,
            np.arange(a, b) + self.cache_offset,
            None if self.index is None else self.index[cut],
            None if self.values is None else self.values[cut],
        )

    def observed(self) -> tuple[np.ndarray, np.ndarray]:
        """Original and corrupted value per sorted position, float64; NaN where nothing was
        observed (scope `all`, or a site the forwards never reached)."""
        n = len(self.trials)
        original, corrupted = np.full(n, np.nan), np.full(n, np.nan)
        for g, (old, new) in self.seen.items():
            if old is None:
                continue
            a, b = self.bounds[g], self.bounds[g + 1]
            original[a:b] = old.double().cpu().numpy()
            new = self.values[a:b] if new is None else new
            corrupted[a:b] = new.double().cpu().numpy()
        return original, corrupted


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
    """Apply `model` to the given rows of a batch tensor, in place and in the tensor's own memory
    layout (a conv output is often channels-last; converting it would change the kernels, and so
    the rounding, of every later layer for every row); returns the tensor and, in element scope,
    the original and corrupted values. Element indices are row-major, whatever the layout.
    `inputs` is the batch's module input, passed (its faulty rows) to models that read it."""
    t, rows = tensor, faults.rows
    if scope == "element":
        index = faults.index
        if index is None:
            index = rows * (t.numel() // t.shape[0]) + offset + faults.elements
        values = t.take(index)
        new = faults.values
        if new is None:
            area = None
            if model.needs_region():
                area = t.reshape(t.shape[0], -1)[rows, offset : offset + size]
            new = model.corrupt(values.unsqueeze(1), faults.draws(seed, area)).reshape(-1)
        new = new.to(t.dtype)
        t.put_(index, new)
        return t, values, new
    part = t[rows].reshape(len(rows), -1)  # a row-major copy of the faulty rows
    area = part[:, offset : offset + size]
    rows_in = None
    if model.needs_input():
        if inputs is None:
            raise InjectionError(f"error model {model.spec!r} needs the module's input")
        rows_in = inputs[rows]
    part[:, offset : offset + size] = model.corrupt(area, faults.draws(seed, area, rows_in))
    t[rows] = part.reshape(len(rows), *t.shape[1:]).to(t.dtype)
    return t, None, None


# modules whose forward always returns a new tensor (never a view of an input or a buffer)
FRESH_OUTPUT = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class _ForwardWrap:
    """Wraps a module's forward through an instance attribute (cheaper than a forward hook,
    which sends every call down nn.Module's slow path) so that its output goes through
    `after(index, output, args, clone)`; `remove()` restores it. `clone` is False for the
    exact FRESH_OUTPUT types (nothing to protect), else None (clone if it may alias)."""

    def __init__(self, module: nn.Module, after, index: int) -> None:
        self.module = module
        self.had_own = "forward" in module.__dict__
        self.original = module.forward
        original = self.original
        clone = False if type(module) in FRESH_OUTPUT and not self.had_own else None

        def forward(*args, **kwargs):
            return after(index, original(*args, **kwargs), args, clone)

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
        self._hooks_held = TemporaryHooks()
        self._mode: OpSites | None = None

    def arm(self, plan: FaultPlan | None) -> None:
        """Set the faults of the next forward (None: run fault-free)."""
        self.plan, self.block = plan, None

    def arm_block(self, block: BlockFaults, forward: int) -> None:
        """Set the next forward's faults to forward `forward` of a campaign block."""
        block.base = forward * block.n_sites
        self.plan, self.block = None, block

    def _apply(
        self, index: int, tensor: torch.Tensor, args, clone: bool | None = None
    ) -> torch.Tensor:
        """Corrupt `tensor` at site `index` as armed; `clone` True/False, or None to clone only
        if the tensor may alias one of `args`."""
        block = self.block
        if block is not None:
            return self._apply_block(block, index, tensor, args, clone)
        plan = self.plan
        faults = plan.faults.get(index) if plan is not None else None
        if faults is None or len(faults.rows) == 0:
            return tensor
        out, original, corrupted = self._corrupt(index, tensor, faults, args, clone)
        if original is not None:
            plan.original[index] = original
            plan.corrupted[index] = corrupted
        return out

    def _apply_block(self, block, index, tensor, args, clone) -> torch.Tensor:
        g = block.base + index
        if block.groups is not None and self.scopes[index] == "element":
            # the common case: one gather of the originals, one scatter of the replacements
            group = block.groups.get(g)
            if group is None:
                return tensor
            if clone or (clone is None and _may_alias(tensor, args)):
                tensor = tensor.clone()
            idx, values = group
            block.seen[g] = (tensor.take(idx), None)
            tensor.put_(idx, values if values.dtype == tensor.dtype else values.to(tensor.dtype))
            return tensor
        a, b = block.bounds[g], block.bounds[g + 1]
        if a == b:
            return tensor
        faults = block.site_faults(a, b)
        out, original, corrupted = self._corrupt(index, tensor, faults, args, clone)
        block.seen[g] = (original, corrupted)
        return out

    def _corrupt(self, index, tensor, faults, args, clone):
        """`corrupt_rows` at site `index`, on a clone where asked or where `tensor` may alias."""
        if clone or (clone is None and _may_alias(tensor, args)):
            tensor = tensor.clone()
        offset, size = self.regions[index]
        model, scope = self.models[index], self.scopes[index]
        inputs = args[0] if args else None
        return corrupt_rows(tensor, faults, model, scope, self.seed, offset, size, inputs)

    def _hooks(self, index: int, site: Site, module: nn.Module):
        if site.kind == "input":

            def pre(_module, args):
                new = self._apply(index, args[0], args, clone=True)
                return None if new is args[0] else (new, *args[1:])

            return module.register_forward_pre_hook(pre)
        return _ForwardWrap(module, self._apply, index)

    def __enter__(self) -> Injector:
        if self._hooks_held or self._mode is not None:
            raise InjectionError("this Injector is already active; it cannot be entered twice")
        callbacks = {}
        for index, site in enumerate(self.sites):
            module = check_site(self.model, site)
            if site.functional:
                callbacks[site.target] = lambda t, i=index: self._apply(i, t, (), clone=True)
            else:
                self._hooks_held.keep(self._hooks(index, site, module))
        if callbacks:
            self._mode = OpSites(self.model, callbacks)
            self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks_held.remove()
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
