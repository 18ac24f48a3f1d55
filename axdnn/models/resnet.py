"""CIFAR ResNets of He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, sec. 4.2:
a 3x3 stem of 16 channels, three stages of n basic blocks with 16/32/64 channels (depth 6n+2),
global average pooling and a linear classifier.

Shortcuts are option B (1x1 conv + BN where the shape changes, identity elsewhere) so that every
multiplication sits in an nn.Conv2d the approximation rooms can replace. The two projections add
0.26 M MACs at 3x32x32: ResNet-20 has 40.81 M (option A: 40.55 M), ResNet-56 125.75 M (125.49 M).
"""

from __future__ import annotations

import torch
from torch import nn

from axdnn.models.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual addition; ReLU after the sum."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR-sized inputs; adaptive average pooling makes any size >= 4 work."""

    def __init__(self, n: int, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=False)
        self.layer1 = self._stage(16, 16, n, stride=1)
        self.layer2 = self._stage(16, 32, n, stride=2)
        self.layer3 = self._stage(32, 64, n, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(in_planes: int, planes: int, n: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlock(in_planes, planes, stride)]
        blocks += [BasicBlock(planes, planes, 1) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model("resnet20")
def resnet20(in_channels: int = 3, num_classes: int = 10) -> CifarResNet:
    """ResNet-20 (n=3, 0.27 M parameters)."""
    return CifarResNet(3, in_channels, num_classes)


@register_model("resnet32")
def resnet32(in_channels: int = 3, num_classes: int = 10) -> CifarResNet:
    """ResNet-32 (n=5, 0.46 M parameters)."""
    return CifarResNet(5, in_channels, num_classes)


@register_model("resnet56")
def resnet56(in_channels: int = 3, num_classes: int = 10) -> CifarResNet:
    """ResNet-56 (n=9, 0.85 M parameters)."""
    return CifarResNet(9, in_channels, num_classes)
