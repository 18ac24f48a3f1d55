"""Convolution geometry shared by every kernel backend."""

from __future__ import annotations

from dataclasses import dataclass


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class ConvGeometry:
    """Kernel size, stride, zero padding, dilation and groups of a 2-D convolution."""

    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @classmethod
    def of(cls, kernel, stride=1, padding=0, dilation=1, groups=1) -> ConvGeometry:
        return cls(_pair(kernel), _pair(stride), _pair(padding), _pair(dilation), int(groups))

    def output_size(self, in_hw) -> tuple[int, int]:
        """Output height and width for an input of height and width `in_hw`."""
        return tuple(
            (size + 2 * pad - dil * (k - 1) - 1) // step + 1
            for size, pad, dil, k, step in zip(
                in_hw, self.padding, self.dilation, self.kernel, self.stride, strict=True
            )
        )

    def reduction_length(self, in_channels: int) -> int:
        """Products summed into one output: (C / groups) * kh * kw."""
        return in_channels // self.groups * self.kernel[0] * self.kernel[1]
