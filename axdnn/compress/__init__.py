"""Compression: pruning (magnitude masks and real slimming via Torch-Pruning) and weight sharing
(per-layer 1-D k-means with an NSGA-II search over k), batch norm folded for deployment, with
their cost and checkpoints.

Per-layer hooks for plans: `prune_layer(module, ratio)` and `share_layer(module, k)`.
"""

from axdnn.compress.cost import SharingLayerCost, cost_summary, model_cost, sharing_cost
from axdnn.compress.folding import fold_batchnorm, foldable_pairs
from axdnn.compress.pruning import (
    CRITERIA,
    LayerWidth,
    PruneRecord,
    SignificanceImportance,
    importance,
    keep_masks,
    output_layers,
    prune_layer,
    prune_structured,
    prune_unstructured,
    sparsity,
)
from axdnn.compress.search import SharingSearchResult, SharingTrial, accuracy, search_sharing
from axdnn.compress.sharing import (
    LayerSharing,
    SharedWeights,
    cluster,
    compression_ratio,
    finetune_codebooks,
    index_bits,
    layer_codes,
    memory_bits,
    share_layer,
    share_weights,
    shareable_layers,
)
from axdnn.compress.store import compressed_checkpoint

__all__ = [
    "CRITERIA",
    "LayerSharing",
    "LayerWidth",
    "PruneRecord",
    "SharedWeights",
    "SharingLayerCost",
    "SharingSearchResult",
    "SharingTrial",
    "SignificanceImportance",
    "accuracy",
    "cluster",
    "compressed_checkpoint",
    "compression_ratio",
    "cost_summary",
    "finetune_codebooks",
    "fold_batchnorm",
    "foldable_pairs",
    "importance",
    "index_bits",
    "keep_masks",
    "layer_codes",
    "memory_bits",
    "model_cost",
    "output_layers",
    "prune_layer",
    "prune_structured",
    "prune_unstructured",
    "search_sharing",
    "share_layer",
    "share_weights",
    "shareable_layers",
    "sharing_cost",
    "sparsity",
]
