"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
table 2) in the common CIFAR form (kuangliu/pytorch-cifar): stride-1 stem and stride 1 in the
second stage, so a 32x32 input ends at 4x4 instead of 1x1."""

from __future__ import annotations

import torch
from torch import nn

from axdnn.models.registry import register_model

# (expansion t, output channels c, repeats n, first stride s); paper table 2 with the CIFAR strides.
CIFAR_CFG: list[tuple[int, int, int, int]] = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),  # stride 2 in the ImageNet network
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class InvertedResidual(nn.Module):
    """1x1 expand-BN-ReLU, 3x3 depthwise-BN-ReLU, 1x1 linear projection-BN; residual if shapes
    match (stride 1, same width).

    ReLU stands in for the paper's ReLU6, as in the common CIFAR implementation.
    """

    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = in_planes * expansion
        self.use_residual = stride == 1 and in_planes == out_planes
        self.conv1 = nn.Conv2d(in_planes, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.relu2 = nn.ReLU(inplace=False)
        self.conv3 = nn.Conv2d(hidden, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + x if self.use_residual else out


class MobileNetV2Cifar(nn.Module):
    """MobileNetV2 (width 1.0) for CIFAR: 3x3 stem of 32, 17 inverted residuals, 1x1 to 1280,
    global average pooling, linear classifier. Any input of at least 8x8 works."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu1 = nn.ReLU(inplace=False)
        blocks: list[nn.Module] = []
        planes = 32
        for expansion, out_planes, repeats, stride in CIFAR_CFG:
            for i in range(repeats):
                block_stride = stride if i == 0 else 1
                blocks.append(InvertedResidual(planes, out_planes, expansion, block_stride))
                planes = out_planes
        self.layers = nn.Sequential(*blocks)
        self.conv2 = nn.Conv2d(planes, 1280, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.relu2 = nn.ReLU(inplace=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(self.layers(x))))
        return self.linear(torch.flatten(self.pool(x), 1))


@register_model("mobilenetv2_cifar")
def mobilenetv2_cifar(in_channels: int = 3, num_classes: int = 10) -> MobileNetV2Cifar:
    """MobileNetV2, CIFAR variant (2.24 M parameters at 10 classes)."""
    return MobileNetV2Cifar(in_channels, num_classes)
