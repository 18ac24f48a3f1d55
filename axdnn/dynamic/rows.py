"""Conv and linear layers in row form: one row of K input terms per output position, so every
mechanism works on a plain (rows x K) @ (K x O) product and can gather rows or columns."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from axdnn.dynamic.chain import Affine


def to_rows(layer: Affine, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(rows, positions per input): im2col for a conv (R = n * L rows), the input for a linear."""
    if layer.kind == "linear":
        return x.reshape(x.shape[0], -1), 1
    k = layer.weight.shape[-2:]
    cols = F.unfold(x, k, layer.dilation, layer.padding, layer.stride)  # n x K x L
    return cols.transpose(1, 2).reshape(-1, cols.shape[1]), cols.shape[2]


def from_rows(layer: Affine, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Rows of outputs (R x O) back to the layer's output shape."""
    if layer.kind == "linear":
        return y
    h, w = layer.out_hw(tuple(x.shape[-2:]))
    return y.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()


def per_input(values: torch.Tensor, positions: int) -> torch.Tensor:
    """Sum per-row counts (R,) to per-input counts (n,)."""
    return values.reshape(-1, positions).sum(1)


def flat_weight(layer: Affine) -> torch.Tensor:
    return layer.weight.reshape(layer.weight.shape[0], -1)
