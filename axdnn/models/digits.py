"""Small CNN for the 8x8 sklearn digits: the default model of quick experiments and tests."""

from __future__ import annotations

import torch
from torch import nn

from axdnn.models.registry import register_model


class DigitsCNN(nn.Module):
    """conv3x3(16)-BN-ReLU, conv3x3(32)-BN-ReLU, maxpool2, conv3x3(64)-BN-ReLU, global avg, fc.

    Any input of at least 2x2 works; global average pooling makes the head size-independent.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w1, 3, padding=1, bias=False),
            nn.BatchNorm2d(w1),
            nn.ReLU(inplace=False),
            nn.Conv2d(w1, w2, 3, padding=1, bias=False),
            nn.BatchNorm2d(w2),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(2),
            nn.Conv2d(w2, w3, 3, padding=1, bias=False),
            nn.BatchNorm2d(w3),
            nn.ReLU(inplace=False),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@register_model("digits_cnn")
def digits_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 16) -> DigitsCNN:
    """The digits CNN (about 25k parameters at width 16)."""
    return DigitsCNN(in_channels, num_classes, width)
