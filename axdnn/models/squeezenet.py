"""SqueezeNet 1.1 (Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters",
arXiv:1602.07360; v1.1 layout of the reference implementation) adapted to 32x32 inputs."""

from __future__ import annotations

import torch
from torch import nn

from axdnn.models.registry import register_model


class Fire(nn.Module):
    """Fire module: 1x1 squeeze, then parallel 1x1 and 3x3 expands concatenated on channels."""

    def __init__(self, in_planes: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_planes, squeeze, 1)
        self.squeeze_relu = nn.ReLU(inplace=False)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_relu = nn.ReLU(inplace=False)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze_relu(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_relu(self.expand1x1(s)), self.expand3x3_relu(self.expand3x3(s))], 1
        )


class SqueezeNetCifar(nn.Module):
    """SqueezeNet 1.1 with a stride-1 3x3 stem (instead of stride 2) so 32x32 ends at 4x4.

    Three 3x3/2 max pools (ceil mode), eight fire modules, a 1x1 conv classifier and global
    average pooling; any input of at least 8x8 works.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, stride=1, padding=1),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64, 64),
            Fire(128, 16, 64, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(128, 32, 128, 128),
            Fire(256, 32, 128, 128),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192),
            Fire(384, 64, 256, 256),
            Fire(512, 64, 256, 256),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Conv2d(512, num_classes, 1),
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


@register_model("squeezenet_cifar")
def squeezenet_cifar(
    in_channels: int = 3, num_classes: int = 10, dropout: float = 0.5
) -> SqueezeNetCifar:
    """SqueezeNet 1.1, CIFAR variant (0.73 M parameters at 10 classes)."""
    return SqueezeNetCifar(in_channels, num_classes, dropout)
