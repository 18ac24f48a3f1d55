"""AlexNet for CIFAR (Krizhevsky et al., NIPS 2012), in the widely used CIFAR form of
bearpaw/pytorch-classification: five convs 64/192/384/256/256, three max pools, one linear layer."""

from __future__ import annotations

import torch
from torch import nn

from axdnn.models.registry import register_model


class AlexNetCifar(nn.Module):
    """conv11x11/4(64), pool, conv5x5(192), pool, conv3x3 384/256/256, pool, fc -> classes.

    Sized for 32x32 inputs (down to 1x1 before the classifier); an adaptive average pool keeps
    the classifier at 256 inputs for larger images.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=5),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=False),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=False),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(2, 2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("alexnet_cifar")
def alexnet_cifar(in_channels: int = 3, num_classes: int = 10) -> AlexNetCifar:
    """AlexNet, CIFAR variant (2.47 M parameters)."""
    return AlexNetCifar(in_channels, num_classes)
