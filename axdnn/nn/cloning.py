"""Build a subclass of nn.Conv2d / nn.Linear with the same geometry and state as a float layer."""

from __future__ import annotations

from torch import nn


def clone_conv(cls: type[nn.Conv2d], conv: nn.Conv2d, padding=None) -> nn.Conv2d:
    """`cls` with conv's geometry (padding overridable), device, dtype and weights."""
    layer = cls(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding if padding is None else padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    layer.load_state_dict(conv.state_dict())
    return layer


def clone_linear(cls: type[nn.Linear], linear: nn.Linear) -> nn.Linear:
    """`cls` with linear's sizes, device, dtype and weights."""
    layer = cls(
        linear.in_features,
        linear.out_features,
        linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    layer.load_state_dict(linear.state_dict())
    return layer
