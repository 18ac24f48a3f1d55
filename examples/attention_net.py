"""A user's model that is not in the zoo: a depthwise-separable block, squeeze-excite and one head
of self-attention written with `F.linear` and `torch.matmul`. Every one of its functional products
is a plan target (`attn.linear#0`, `attn.matmul#1`, ...):

    axdnn train --model examples/attention_net.py:make --out net.pt --epochs 2
    axdnn evaluate --checkpoint net.pt --model examples/attention_net.py:make --multiplier drum:4
"""

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """One head of self-attention over tokens (B, T, C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = nn.Parameter(torch.randn(3 * dim, dim) / dim**0.5)
        self.out = nn.Parameter(torch.randn(dim, dim) / dim**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, self.qkv).chunk(3, dim=-1)
        scores = torch.matmul(q, k.transpose(-1, -2)) / q.shape[-1] ** 0.5
        return x + F.linear(torch.matmul(scores.softmax(-1), v), self.out)


class AttentionNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.pw = nn.Conv2d(width, width, 1)
        self.se = nn.Parameter(torch.randn(width, width) / width**0.5)
        self.attn = SelfAttention(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(x))
        h = F.relu(self.pw(F.relu(self.dw(h)))) + h
        gate = torch.sigmoid(F.linear(h.mean(dim=(2, 3)), self.se))
        tokens = (h * gate[:, :, None, None]).flatten(2).transpose(1, 2)
        return self.head(self.attn(tokens).mean(dim=1))


def make(in_channels: int = 1, num_classes: int = 10) -> AttentionNet:
    return AttentionNet(in_channels, num_classes)
