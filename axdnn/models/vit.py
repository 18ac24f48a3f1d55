"""A small vision transformer for 8x8 to 32x32 inputs (Dosovitskiy et al. 2021, sized down), so
that TransAxx's question, which multipliers the attention and MLP products may use, can be asked
on a CPU.

Patch embedding: a 3x3 convolution and an adaptive average pool to a 7x7 grid (49 tokens for
digits' 8x8, Fashion-MNIST's 28x28 and CIFAR's 32x32 alike, so one learned position embedding
fits every input size). Each block: pre-norm multi-head self-attention and an MLP, with residual
adds. The projections and the MLP are nn.Linear modules; the attention products are functional
`torch.matmul` calls, plan targets and injection sites under the names
`blocks.<i>.attn.matmul#0` (Q K^T) and `blocks.<i>.attn.matmul#1` (attention x V).
"""

from __future__ import annotations

import torch
from torch import nn

from axdnn.errors import ModelError
from axdnn.models.registry import register_model

GRID = 7


class Attention(nn.Module):
    """Multi-head self-attention over tokens (B, T, D) with explicit matmuls."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ModelError(f"vit: width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = torch.matmul(q, k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        out = torch.matmul(scores.softmax(dim=-1), v)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


OPERATIONS = {
    "embed": ("embed",),
    "qkv": ("blocks.*.attn.qkv",),
    "scores": ("blocks.*.attn.matmul#0",),  # Q K^T
    "softmax": ("blocks.*.attn.softmax#*",),
    "values": ("blocks.*.attn.matmul#1",),  # attention x V
    "proj": ("blocks.*.attn.proj",),
    "mlp": ("blocks.*.mlp.0", "blocks.*.mlp.2"),
    "head": ("head",),
}
"""Operation groups for `axdnn.analysis.redcane` (TransAxx's question: which products of the
attention and the MLP tolerate which multipliers)."""


class TinyViT(nn.Module):
    """Patch embedding, `depth` transformer blocks, mean-pooled tokens, a linear head."""

    operations = OPERATIONS

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        *,
        dim: int = 48,
        depth: int = 3,
        heads: int = 3,
        mlp_ratio: int = 2,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ModelError(f"vit: depth={depth}; expected >= 1")
        self.embed = nn.Conv2d(in_channels, dim, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(GRID)
        self.position = nn.Parameter(0.02 * torch.randn(1, GRID * GRID, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        # structured pruning keeps the residual width and the heads (see prune_structured)
        self.pruning_ignored = (
            "embed",
            *(
                f"blocks.{i}.{layer}"
                for i in range(depth)
                for layer in ("attn.qkv", "attn.proj", "mlp.2")
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.pool(self.embed(x)).flatten(2).transpose(1, 2) + self.position
        return self.head(self.norm(self.blocks(tokens)).mean(dim=1))


@register_model("vit_tiny", lr=2e-3)
def vit_tiny(in_channels: int, num_classes: int) -> TinyViT:
    return TinyViT(in_channels, num_classes)
