"""Weight sharing (Dupuis et al., "Sensitivity analysis and compression opportunities in DNNs
using weight sharing", DATE 2020): each conv/linear layer's weights are clustered into k shared
values by optimal 1-D k-means (`kmeans1d`, dynamic programming, deterministic) and stored as a
codebook of k values plus one ceil(log2 k)-bit index per weight.

Compression ratio as in the paper: CR = sum(W*B) / sum(W*ceil(log2 k) + k*B) over the layers,
W weights of B bits each; a layer left unshared counts W*B on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import kmeans1d
import torch
from torch import nn

from axdnn.errors import CompressionError
from axdnn.runtime import eval_mode

SHAREABLE = (nn.modules.conv._ConvNd, nn.Linear)


@dataclass
class SharedWeights:
    """One layer's shared weights: `codebook` (k values, sorted) and `indices` (weight shape)."""

    codebook: torch.Tensor
    indices: torch.Tensor

    @property
    def k(self) -> int:
        return int(self.codebook.numel())

    def dense(self) -> torch.Tensor:
        """The weight tensor the codebook and indices stand for."""
        return self.codebook[self.indices]


@dataclass
class LayerSharing:
    """Plain record of one shared layer: clusters, weights, bits and the codebook."""

    name: str
    k: int
    weights: int
    bits: int
    codebook: list[float]

    @property
    def index_bits(self) -> int:
        return index_bits(self.k)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["index_bits"] = self.index_bits
        d["memory_bits"] = memory_bits(self.weights, self.k, self.bits)
        return d


def index_bits(k: int) -> int:
    """Bits of one codebook index: ceil(log2 k) (0 for a single shared value)."""
    return math.ceil(math.log2(k)) if k > 1 else 0


def memory_bits(weights: int, k: int | None, bits: int = 16) -> int:
    """Weight memory of a layer: W*ceil(log2 k) + k*B shared, W*B when `k` is None."""
    return weights * bits if k is None else weights * index_bits(k) + k * bits


def compression_ratio(
    weights: Mapping[str, int], ks: Mapping[str, int | None], bits: int = 16
) -> float:
    """CR = sum(W*B) / sum(W*ceil(log2 k) + k*B) over the layers of `weights` (Dupuis et al.)."""
    dense = sum(w * bits for w in weights.values())
    shared = sum(memory_bits(w, ks.get(n), bits) for n, w in weights.items())
    return dense / max(shared, 1)


def shareable_layers(model: nn.Module) -> dict[str, int]:
    """{name: weight count} of the model's conv and linear layers, in model order."""
    return {n: m.weight.numel() for n, m in model.named_modules() if isinstance(m, SHAREABLE)}


def cluster(weight: torch.Tensor, k: int) -> SharedWeights:
    """Optimal 1-D k-means of a weight tensor into at most k values (fewer if it holds fewer
    distinct values)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise CompressionError(f"number of shared values k={k!r} must be a positive integer")
    flat = weight.detach().flatten().cpu().double()
    distinct = torch.unique(flat)
    if len(distinct) <= k:
        codebook = distinct
    else:
        _, centroids = kmeans1d.cluster(flat.tolist(), k)
        codebook = torch.tensor(centroids, dtype=torch.float64)
    indices = _nearest(flat, codebook).view(weight.shape)
    return SharedWeights(codebook.to(weight.dtype), indices)


def _nearest(flat: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest (sorted) codebook value of each element."""
    right = torch.searchsorted(codebook, flat).clamp(max=len(codebook) - 1)
    left = (right - 1).clamp(min=0)
    closer_left = (flat - codebook[left]).abs() <= (codebook[right] - flat).abs()
    return torch.where(closer_left, left, right)


def share_layer(module: nn.Module, k: int, *, bits: int = 16, name: str = "") -> LayerSharing:
    """Replace one conv/linear layer's weights in place by their k shared values; returns the
    layer's record (codebook, bits). The hook for plans: one layer, one k."""
    if not isinstance(module, SHAREABLE):
        raise CompressionError(
            f"share_layer {name or ''}: {type(module).__name__} is not a conv or linear layer"
        )
    shared = cluster(module.weight, k)
    with torch.no_grad():
        module.weight.copy_(shared.dense())
    return LayerSharing(name, shared.k, module.weight.numel(), bits, shared.codebook.tolist())


def share_weights(
    model: nn.Module, ks: Mapping[str, int], bits: int = 16
) -> dict[str, LayerSharing]:
    """Share the weights of the named layers in place ({layer: k}); unnamed layers keep theirs."""
    modules = dict(model.named_modules())
    unknown = sorted(n for n in ks if not isinstance(modules.get(n), SHAREABLE))
    if unknown:
        raise CompressionError(
            f"weight sharing names {unknown}, which are not conv/linear layers of the model; "
            f"layers: {list(shareable_layers(model))}"
        )
    return {n: share_layer(modules[n], k, bits=bits, name=n) for n, k in ks.items()}


def layer_codes(model: nn.Module, sharing: Mapping[str, Mapping]) -> dict[str, SharedWeights]:
    """Codebook and indices of each shared layer of a (reloaded) model, from its stored
    per-layer codebooks; a weight that is not one of its codebook values is an error."""
    modules = dict(model.named_modules())
    codes = {}
    for name, rec in sharing.items():
        weight = modules[name].weight.detach()
        codebook = torch.tensor(sorted(rec["codebook"]), dtype=weight.dtype)
        shared = SharedWeights(codebook, _nearest(weight.flatten(), codebook).view(weight.shape))
        if not torch.equal(shared.dense(), weight):
            raise CompressionError(
                f"layer {name!r} has weights outside its stored codebook of {len(codebook)} "
                "values; it was changed after sharing"
            )
        codes[name] = shared
    return codes


def finetune_codebooks(
    model: nn.Module,
    codes: Mapping[str, SharedWeights],
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    epochs: int = 1,
    lr: float = 1e-4,
    seed: int = 0,
) -> list[float]:
    """Tune the shared values (not the indices): each centroid moves by the summed gradient of
    its weights (Han et al., Deep Compression), Adam on the codebooks only. Returns the mean
    loss of each epoch; the weights stay exactly codebook values."""
    torch.manual_seed(seed)
    modules = dict(model.named_modules())
    books = {n: nn.Parameter(c.codebook.clone()) for n, c in codes.items()}
    opt = torch.optim.Adam(list(books.values()), lr=lr)
    losses = []
    with eval_mode(model):  # batch-norm statistics stay as they are
        for _ in range(epochs):
            losses.append(_codebook_epoch(model, modules, codes, books, opt, batches))
    with torch.no_grad():
        for n, c in codes.items():
            c.codebook.copy_(books[n].detach())
            modules[n].weight.copy_(c.dense())
    model.zero_grad(set_to_none=True)
    return losses


def _codebook_epoch(model, modules, codes, books, opt, batches) -> float:
    """One pass over the batches; the weights are rebuilt from the codebooks before each."""
    total, seen = 0.0, 0
    for x, y in batches:
        for n, c in codes.items():
            modules[n].weight.data.copy_(books[n].detach()[c.indices])
        model.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        for n, c in codes.items():
            grad = modules[n].weight.grad.flatten()
            books[n].grad = torch.zeros_like(books[n]).index_add_(0, c.indices.flatten(), grad)
        opt.step()
        total, seen = total + loss.item() * len(y), seen + len(y)
    return total / max(seen, 1)
