"""Pruning and weight sharing as parts of a plan's layer spec, beside a multiplier or formats:

    layers:
      "conv1": {multiplier: "drum:4", prune: 0.5, share: 16}

`prune` zeroes that fraction of the layer's weights by magnitude (`prune_structured: true`: its
smallest-L1 output filters); `share` replaces the weights by `share` shared values (optimal 1-D
k-means; with pruning, zero is one of them). Both keep holding while the layer is fine-tuned:
before a forward whose weights changed, the mask is re-applied and the weights go back to their
nearest codebook value. Mask and codebook are buffers, so checkpoints carry them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from axdnn.compress.pruning import PRUNABLE, prune_layer
from axdnn.compress.sharing import cluster, index_bits
from axdnn.errors import ConfigError
from axdnn.nn.plan import SpecPart, register_spec_part


def _check_layer(module: nn.Module, name: str, what: str) -> None:
    if not isinstance(module, PRUNABLE):
        raise ConfigError(
            f"plan {what} names layer {name!r} ({type(module).__name__}), which is not a conv "
            "or linear layer"
        )


class _KeepOnChange:
    """A forward pre-hook that re-imposes a weight constraint whenever the weights changed."""

    def __init__(self, apply) -> None:
        self.apply = apply
        self.seen: tuple | None = None

    def __call__(self, module: nn.Module, _args) -> None:
        weight = module.weight
        key = (weight._version, weight.data_ptr())
        if key != self.seen:
            with torch.no_grad():
                self.apply(module)
            self.seen = (weight._version, weight.data_ptr())


def _apply_mask(module: nn.Module) -> None:
    module.weight.mul_(module.prune_mask.to(module.weight.dtype))


def _project(module: nn.Module) -> None:
    book = module.share_codebook
    flat = module.weight.reshape(-1, 1)
    nearest = (flat - book.reshape(1, -1)).abs().argmin(dim=1)
    module.weight.copy_(book[nearest].reshape(module.weight.shape))


@register_spec_part
class PruningSpec(SpecPart):
    """Magnitude pruning of one layer's weights (or output filters)."""

    slot: ClassVar[str] = "pruning"
    trigger: ClassVar[tuple[str, ...]] = ("prune",)
    order: ClassVar[int] = 1
    prune: float = Field(gt=0, lt=1, description="Fraction of the layer's weights zeroed.")
    prune_structured: bool = Field(False, description="Prune whole output filters by L1 norm.")

    def transform(self, module: nn.Module, name: str) -> dict[str, Any]:
        _check_layer(module, name, f"key prune={self.prune}")
        mask = prune_layer(module, self.prune, structured=self.prune_structured)
        module.register_buffer("prune_mask", mask.to(torch.bool))
        module.register_forward_pre_hook(_KeepOnChange(_apply_mask))
        done: dict[str, Any] = {"pruned": self.prune}
        if self.prune_structured:
            done["structured"] = True
        return done


@dataclass(frozen=True)
class SharedStorage:
    """A shared layer's weight memory for the cost model: ceil(log2 k) index bits per weight
    plus k codebook values, as the weight sharing paper's compression ratio counts it."""

    k: int

    def bits_per_weight(self, value_bits: int, weights: int) -> float:
        return index_bits(self.k) + self.k * value_bits / weights


@register_spec_part
class SharingSpec(SpecPart):
    """Weight sharing: the layer's weights take `share` values (a per-layer codebook)."""

    slot: ClassVar[str] = "sharing"
    trigger: ClassVar[tuple[str, ...]] = ("share",)
    order: ClassVar[int] = 2
    share: int = Field(ge=1, description="Number of shared weight values (clusters).")

    def transform(self, module: nn.Module, name: str) -> dict[str, Any]:
        _check_layer(module, name, f"key share={self.share}")
        weight = module.weight.detach()
        pruned = getattr(module, "prune_mask", None)
        if pruned is not None and self.share < 2:
            raise ConfigError(
                f"layer {name!r}: share={self.share} with pruning leaves only zero; give share >= 2"
            )
        kept = weight[pruned] if pruned is not None else weight.reshape(-1)
        book = cluster(kept, self.share - (pruned is not None)).codebook.to(weight)
        if pruned is not None:
            book = torch.cat([book.new_zeros(1), book])
        module.register_buffer("share_codebook", book)
        with torch.no_grad():
            _project(module)
        module.register_forward_pre_hook(_KeepOnChange(_project))
        module.weight_storage = SharedStorage(self.share)
        return {"shared_k": self.share}
