"""Injection sites: where a fault lands.

A site is a module's `output`, `input` or `weight`, optionally narrowed to one channel (a conv
filter / feature map, dim 1 of activations and dim 0 of weights; a neuron of a linear layer), or
the output of a functional op inside forward code, named as in `axdnn.inject.functional`.
Spec strings: `features.0`, `features.0:input`, `features.0:weight`, `features.0[3]`,
`fc:weight[2]`, `layer1.0.add#0`, `softmax#0`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from axdnn.errors import InjectionError
from axdnn.inject.functional import OpSites
from axdnn.runtime import TemporaryHooks, eval_mode

KINDS = ("output", "input", "weight")
_SITE = re.compile(r"^(?P<target>[^:\[\]]*)(?::(?P<kind>[a-z]+))?(?:\[(?P<channel>\d+)\])?$")
FORMS = "MODULE[:output|input|weight][[CHANNEL]] or MODULE.OP#K (a functional op)"


@dataclass(frozen=True)
class Site:
    """One injection site (see the module docstring)."""

    target: str
    kind: str = "output"
    channel: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InjectionError(
                f"site {self.target!r}: kind {self.kind!r}; expected one of {KINDS}"
            )
        if self.functional and self.kind != "output":
            raise InjectionError(f"functional-op site {self.target!r} has only an output")

    @property
    def functional(self) -> bool:
        """Whether the site is a functional op (named `...op#k`)."""
        return "#" in self.target

    def __str__(self) -> str:
        text = self.target + ("" if self.kind == "output" else f":{self.kind}")
        return text + ("" if self.channel is None else f"[{self.channel}]")


def parse_site(text: str | Site) -> Site:
    """Turn a site spec string (see FORMS) into a Site."""
    if isinstance(text, Site):
        return text
    match = _SITE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise InjectionError(f"bad site {text!r}; expected {FORMS}")
    channel = match.group("channel")
    return Site(
        match.group("target"), match.group("kind") or "output", int(channel) if channel else None
    )


def layer_sites(model: nn.Module, kind: str = "output") -> list[Site]:
    """A site for every conv/linear layer (approximate ones included), in forward order."""
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    return [Site(n, kind) for n, m in model.named_modules() if n and isinstance(m, kinds)]


def check_site(model: nn.Module, site: Site) -> nn.Module | None:
    """The module a non-functional site names (an error if it does not exist or has no weight)."""
    if site.functional:
        return None
    modules = dict(model.named_modules())
    if site.target not in modules:
        names = [n for n in modules if n][:20]
        raise InjectionError(
            f"site {str(site)!r}: the model has no module {site.target!r}; modules include "
            f"{', '.join(names)}"
        )
    module = modules[site.target]
    if site.kind == "weight" and not isinstance(getattr(module, "weight", None), torch.Tensor):
        raise InjectionError(f"site {str(site)!r}: module {site.target!r} has no weight tensor")
    return module


def _functional_shapes(model, sites: list[Site], example, shapes: dict) -> None:
    """Run the forward once, recording the shapes of the functional sites' op outputs."""
    with OpSites(model, record=True) as mode:
        model(example)
    for i, site in enumerate(sites):
        if site.functional:
            if site.target not in mode.seen:
                raise InjectionError(
                    f"site {site.target!r}: no such functional op in the forward pass; "
                    f"ops seen: {', '.join(list(mode.seen)[:30])}"
                )
            shapes[i] = mode.seen[site.target]


@torch.no_grad()
def site_shapes(
    model: nn.Module, sites: list[Site], example: torch.Tensor
) -> list[tuple[int, ...]]:
    """Per-sample shape of each site's tensor (the weight's shape for weight sites), from one
    forward on `example`; channels are checked against the shapes."""
    shapes: dict[int, tuple[int, ...]] = {}

    def keep(i: int, t: torch.Tensor) -> None:
        shapes.setdefault(i, tuple(t.shape[1:]))

    with TemporaryHooks() as hooks, eval_mode(model):
        for i, site in enumerate(sites):
            module = check_site(model, site)
            if site.kind == "weight":
                shapes[i] = tuple(module.weight.shape)
            elif site.kind == "input":
                hooks.pre(module, lambda _m, args, i=i: keep(i, args[0]))
            elif not site.functional:
                hooks.post(module, lambda _m, _a, out, i=i: keep(i, out))
        if any(s.functional for s in sites):
            _functional_shapes(model, sites, example, shapes)
        else:
            model(example)
    out = []
    for i, site in enumerate(sites):
        if i not in shapes:
            raise InjectionError(f"site {str(site)!r} was never reached by the forward pass")
        shape = shapes[i]
        if site.channel is not None and (not shape or site.channel >= shape[0]):
            raise InjectionError(
                f"site {str(site)!r}: channel {site.channel} is out of range for shape {shape}"
            )
        out.append(shape)
    return out


def region(shape: tuple[int, ...], channel: int | None) -> tuple[int, int]:
    """(offset, size) of a site's region in the flattened per-sample tensor."""
    total = 1
    for s in shape:
        total *= s
    if channel is None:
        return 0, total
    size = total // shape[0]
    return channel * size, size
