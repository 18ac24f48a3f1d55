"""What compression saves, through the cost model's public counters: MACs and parameters of a
(pruned) model, and the weight memory and codebook lookups of shared weights.

A shared layer stores W indices of ceil(log2 k) bits and k values of B bits instead of W values;
each multiplication fetches its weight through the codebook, so a layer makes one codebook
lookup per MAC it performs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from torch import nn

from axdnn.compress.sharing import index_bits, memory_bits
from axdnn.cost import count_ops


@dataclass
class SharingLayerCost:
    """Weight memory and codebook lookups of one conv/linear layer, per sample."""

    name: str
    weights: int
    k: int | None
    dense_bits: int
    memory_bits: int
    index_bits: int | None
    macs: int
    codebook_lookups: int


def sharing_cost(
    model: nn.Module,
    input_shape: Sequence[int],
    ks: Mapping[str, int | None],
    bits: int = 16,
) -> list[SharingLayerCost]:
    """Per-layer weight memory (bits) and codebook lookups of `model` with {layer: k} shared;
    MACs and weight counts come from `axdnn.cost.count_ops`."""
    report = count_ops(model, tuple(input_shape))
    rows = []
    for layer in report.layers:
        if not layer.weight_elems:
            continue
        k = ks.get(layer.name)
        macs = layer.effective_macs
        rows.append(
            SharingLayerCost(
                layer.name,
                layer.weight_elems,
                k,
                layer.weight_elems * bits,
                memory_bits(layer.weight_elems, k, bits),
                None if k is None else index_bits(k),
                macs,
                0 if k is None else macs,
            )
        )
    return rows


def cost_summary(rows: Sequence[SharingLayerCost]) -> dict:
    """Totals of `sharing_cost` rows as a JSON-ready dict (layers included)."""
    dense = sum(r.dense_bits for r in rows)
    shared = sum(r.memory_bits for r in rows)
    return {
        "dense_weight_bits": dense,
        "shared_weight_bits": shared,
        "compression_ratio": dense / max(shared, 1),
        "codebook_lookups": sum(r.codebook_lookups for r in rows),
        "layers": [asdict(r) for r in rows],
    }


def model_cost(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """MACs and parameters per sample of a model (e.g. before and after slimming)."""
    report = count_ops(model, tuple(input_shape))
    return {"macs": report.total_macs, "params": report.total_params}
