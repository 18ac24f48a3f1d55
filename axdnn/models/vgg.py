"""VGG with batch norm for CIFAR (Simonyan & Zisserman, ICLR 2015, configurations A and D), in the
common pytorch-cifar form: 3x3 conv-BN-ReLU stacks, five 2x2 max pools, one 512 -> classes fc."""

from __future__ import annotations

import torch
from torch import nn

from axdnn.models.registry import register_model

# fmt: off
CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
}
# fmt: on


class VGG(nn.Module):
    """VGG-BN body from a cfg list (ints: conv widths, "M": max pool), then a linear classifier.

    Needs inputs of at least 32x32 (five halvings); larger inputs are averaged to 1x1.
    """

    def __init__(self, cfg: list[int | str], in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                width = int(item)
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=False),
                ]
                channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("vgg11")
def vgg11(in_channels: int = 3, num_classes: int = 10) -> VGG:
    """VGG-11-BN for CIFAR (configuration A, 9.2 M parameters, 153 M MACs at 32x32)."""
    return VGG(CFGS["vgg11"], in_channels, num_classes)


@register_model("vgg16")
def vgg16(in_channels: int = 3, num_classes: int = 10) -> VGG:
    """VGG-16-BN for CIFAR (configuration D, 14.7 M parameters, 313 M MACs at 32x32)."""
    return VGG(CFGS["vgg16"], in_channels, num_classes)
