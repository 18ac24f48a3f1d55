"""Functional MAC operations as plan targets: `F.linear`, `F.conv2d`, `torch.matmul`/`bmm`,
`einsum`, attention inside a user's forward, under the site names of `axdnn.sites`.

`approximate` attaches a `FunctionalApproximation` to the model (child `axdnn_functional`) that
joins the model's site mode for each forward and runs every planned site through the product
table: the op is written as matrix products (`axdnn.nn.products`) and each product goes through
`approx_matmul`. Operands that are nn.Parameters (weights) are quantized per tensor from their own
range at each call; other operands from ranges calibrated on data like layer activations (until
calibrated, from each call's own range). Gradients are straight-through. The calibrated ranges
are buffers, so state dicts carry them.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from axdnn.arith import get_multiplier
from axdnn.cost.functional import lookup
from axdnn.cost.profile import HardwareProfile
from axdnn.errors import ConfigError
from axdnn.nn.layers import multiplier_profile
from axdnn.nn.matmul import approx_matmul
from axdnn.nn.plan import LayerSpec, MultiplierSpec
from axdnn.nn.products import Unsupported, decompose
from axdnn.runtime import eval_mode
from axdnn.sites import NOT_HANDLED, Site, SiteHandler, attach

HOLDER = "axdnn_functional"
_WILDCARDS = "*?["


@dataclass(frozen=True)
class FunctionalSite:
    """A MAC-bearing functional op outside conv/linear modules; `unsupported` says why it cannot
    run on a table ('' when it can)."""

    name: str
    op: str
    unsupported: str = ""


def _operands(op: str, func, args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """The call's (first, second) product operands as given (before any reshaping)."""
    if op in ("addmm", "baddbmm"):
        return args[1], args[2]
    if op in ("linear", "conv1d", "conv2d"):
        x = args[0] if args else kwargs.get("input")
        return x, args[1] if len(args) > 1 else kwargs.get("weight")
    if op == "einsum":
        rest = args[1:]
        rest = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
        return (rest[0], rest[1]) if len(rest) == 2 else (None, None)
    if op == "sdpa":
        return None, None
    first, second = args[0], args[1] if len(args) > 1 else next(iter(kwargs.values()), None)
    return (second, first) if _reversed(func) else (first, second)


def _reversed(func) -> bool:
    return getattr(func, "__name__", "") == "__rmatmul__"


def _on_meta(args: tuple, kwargs: dict) -> bool:
    tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
    return any(t.is_meta for t in tensors)


def _run(site: Site, func, args: tuple, kwargs: dict, mm, training: bool = False) -> torch.Tensor:
    flipped = _reversed(func)
    return decompose(site.op, args, kwargs, mm, reversed_operands=flipped, training=training)


class _Discovery(SiteHandler):
    def __init__(self, excluded: tuple[type, ...]) -> None:
        self.excluded = excluded
        self.sites: dict[str, FunctionalSite] = {}

    def call(self, site, func, args, kwargs):
        if lookup(func) is None or any(isinstance(m, self.excluded) for m in site.modules):
            return NOT_HANDLED
        reason = ""
        try:
            out = _run(site, func, args, kwargs, lambda a, b, k: torch.matmul(a, b))
        except Unsupported as err:
            out, reason = NOT_HANDLED, str(err)
        self.sites.setdefault(site.name, FunctionalSite(site.name, site.op, reason))
        return out


@torch.no_grad()
def functional_sites(
    model: nn.Module, example: torch.Tensor, excluded: tuple[type, ...]
) -> dict[str, FunctionalSite]:
    """The MAC-bearing functional sites of one forward on `example` that no module of an
    `excluded` type (conv/linear layers, which plans convert as modules) runs."""
    discovery = _Discovery(excluded)
    with eval_mode(model), attach(model, discovery):
        model(example)
    return discovery.sites


def _buffer_name(site: str, product: int) -> str:
    return f"{site.replace('.', '/')}@{product}"


class FunctionalApproximation(nn.Module, SiteHandler):
    """The planned functional sites of one model and their calibrated operand ranges."""

    def __init__(self, specs: dict[str, MultiplierSpec]) -> None:
        nn.Module.__init__(self)
        self.specs = dict(specs)
        self.calibrating = False
        self._multipliers = {n: get_multiplier(s.multiplier) for n, s in self.specs.items()}
        self._entered: list[contextlib.ExitStack] = []

    def install(self, root: nn.Module) -> None:
        """Join `root`'s site mode for every forward of it."""
        root.register_forward_pre_hook(self._enter)
        root.register_forward_hook(self._exit, always_call=True)

    def _enter(self, root: nn.Module, _args) -> None:
        stack = contextlib.ExitStack()
        stack.enter_context(attach(root, self))
        self._entered.append(stack)

    def _exit(self, _root, _args, _out) -> None:
        if self._entered:
            self._entered.pop().close()

    def call(self, site, func, args, kwargs):  # noqa: D102 - see SiteHandler
        spec = self.specs.get(site.name)
        if spec is None or _on_meta(args, kwargs):
            return NOT_HANDLED
        first, second = _operands(site.op, func, args, kwargs)
        weights = (isinstance(first, nn.Parameter), isinstance(second, nn.Parameter))
        if self.calibrating:
            return _run(site, func, args, kwargs, self._observer(site.name, weights))
        product = self._product(site.name, spec, weights)
        return _run(site, func, args, kwargs, product, self.training)

    def _observer(self, site: str, weights: tuple[bool, bool]):
        def observe(a: torch.Tensor, b: torch.Tensor, product: int) -> torch.Tensor:
            da, db = a.detach(), b.detach()
            seen = torch.stack([da.min(), da.max(), db.min(), db.max()]).float()
            for i, weight in enumerate(weights):
                if weight:
                    seen[2 * i : 2 * i + 2] = math.nan
            name = _buffer_name(site, product)
            old = self._buffers.get(name)
            if old is not None:
                low, high = torch.fmin(old[0::2], seen[0::2]), torch.fmax(old[1::2], seen[1::2])
                seen = torch.stack([low, high], 1).flatten()
            self.register_buffer(name, seen)
            return torch.matmul(a, b)

        return observe

    def _product(self, site: str, spec: MultiplierSpec, weights: tuple[bool, bool]):
        multiplier = self._multipliers[site]

        def product(a: torch.Tensor, b: torch.Tensor, index: int) -> torch.Tensor:
            ranges = self._buffers.get(_buffer_name(site, index))
            a_range = b_range = None
            if ranges is not None:
                a_range = None if weights[0] or ranges[0].isnan() else (ranges[0], ranges[1])
                b_range = None if weights[1] or ranges[2].isnan() else (ranges[2], ranges[3])
            return approx_matmul(a, b, multiplier, spec.backend, a_range, b_range)

        return product

    def site_profiles(self) -> dict[str, HardwareProfile]:
        """How the cost model prices each planned site: its multiplier's integer operands."""
        return {name: multiplier_profile(self._multipliers[name]) for name in self.specs}

    def calibrated(self, site: str) -> bool:
        """Whether calibration saw `site` (else its ranges come from each call)."""
        return _buffer_name(site, 0) in self._buffers

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key, value in state_dict.items():
            name = key[len(prefix) :]
            if key.startswith(prefix) and "." not in name and name not in self._buffers:
                self.register_buffer(name, torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def is_explicit(pattern: str) -> bool:
    """A pattern without glob characters names one layer or site on purpose."""
    return not any(c in pattern for c in _WILDCARDS)


def plan_functional(
    sites: Iterable[FunctionalSite], chosen: dict[str, tuple[str, LayerSpec]]
) -> tuple[dict[str, MultiplierSpec], dict[str, str]]:
    """(multiplier spec of every site that runs on a table, reason of every site that stays
    exact). A pattern that names a site explicitly but cannot approximate it is a ConfigError."""
    specs: dict[str, MultiplierSpec] = {}
    exact: dict[str, str] = {}
    for site in sites:
        if site.name not in chosen:
            exact[site.name] = "no plan pattern names it"
            continue
        pattern, spec = chosen[site.name]
        part = spec.compute
        why = ""
        if part is None:
            exact[site.name] = f"plan pattern {pattern!r} keeps it float (multiplier: null)"
            continue
        if not isinstance(part, MultiplierSpec):
            why = "number formats run on conv/linear modules; functional ops take a multiplier"
        elif site.unsupported:
            why = f"no table path for it: {site.unsupported}"
        if why and is_explicit(pattern):
            raise ConfigError(f"plan pattern {pattern!r} names functional op {site.name!r}: {why}")
        if why:
            exact[site.name] = f"{why} (pattern {pattern!r})"
            continue
        specs[site.name] = part
    return specs, exact


def note_for(spec: MultiplierSpec) -> str:
    """What a functional site does differently from a conv/linear layer with the same spec."""
    notes = ["per-tensor operands"]
    if spec.gradient != "ste":
        notes.append(f"gradient straight-through (not {spec.gradient!r})")
    if spec.acc_bits is not None:
        notes.append(f"accumulator not saturated at {spec.acc_bits} bits")
    return "; ".join(notes)
