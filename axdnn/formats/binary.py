"""Binary and ternary weights. Binary (BWN / XNOR-Net, Rastegari et al. 2016, arXiv:1603.05279):
w_b = sign(w) * mean|w|, per tensor or per output channel, gradient straight through where
|w| <= 1 (hard-tanh STE, Courbariaux et al. 2016). Ternary (TWN, Li et al. 2016, arXiv:1605.04711,
eqs. 3-5): threshold d = 0.7 mean|w|, scale a = mean of |w| over |w| > d, w_t = a sign(w) [|w| > d],
identity gradient."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from axdnn.errors import FormatError
from axdnn.formats.base import Format, Options, register_format, with_options
from axdnn.formats.dorefa import sign_nonzero
from axdnn.formats.ste import clipped_straight_through, straight_through


def _reduce_dims(w: Tensor, per_channel: bool) -> tuple[int, ...]:
    """Dimensions averaged over: all, or all but dim 0 (output channels) for 2-D+ tensors."""
    if per_channel and w.dim() >= 2:
        return tuple(range(1, w.dim()))
    return tuple(range(w.dim()))


@dataclass(frozen=True)
class Binary(Format):
    """`binary[,per_channel=on]`: sign(w) * mean|w| (sign(0) = +1)."""

    per_channel: bool = False

    kind: ClassVar[str] = "binary"

    @property
    def bits(self) -> int:
        return 1

    @property
    def spec(self) -> str:
        return with_options("binary", [("per_channel", self.per_channel, False)])

    def scale(self, w: Tensor) -> Tensor:
        """The scaling factor mean|w|, broadcastable against w."""
        wd = w.detach()
        return wd.abs().mean(dim=_reduce_dims(wd, self.per_channel), keepdim=True)

    def _quantize(self, w: Tensor, generator: torch.Generator | None) -> Tensor:
        if w.numel() == 0:
            return w
        q = sign_nonzero(w.detach()) * self.scale(w)
        return clipped_straight_through(w, q, -1.0, 1.0)


@dataclass(frozen=True)
class Ternary(Format):
    """`ternary[,per_channel=on][,ratio=R]`: TWN with threshold R * mean|w| (R = 0.7)."""

    per_channel: bool = False
    ratio: float = 0.7

    kind: ClassVar[str] = "ternary"

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.ratio) < float("inf"):
            raise FormatError(f"ternary threshold ratio={self.ratio!r} is invalid; expected >= 0")
        object.__setattr__(self, "ratio", float(self.ratio))

    @property
    def bits(self) -> int:
        return 2

    @property
    def spec(self) -> str:
        return with_options(
            "ternary", [("per_channel", self.per_channel, False), ("ratio", self.ratio, 0.7)]
        )

    def threshold_and_scale(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """The TWN threshold d and scale a (0 where no value exceeds d), broadcastable to w."""
        a = w.detach().abs()
        dims = _reduce_dims(a, self.per_channel)
        delta = self.ratio * a.mean(dim=dims, keepdim=True)
        keep = (a > delta).to(a.dtype)
        count = keep.sum(dim=dims, keepdim=True)
        scale = (a * keep).sum(dim=dims, keepdim=True) / count.clamp_min(1)
        return delta, scale

    def _quantize(self, w: Tensor, generator: torch.Generator | None) -> Tensor:
        if w.numel() == 0:
            return w
        wd = w.detach()
        delta, scale = self.threshold_and_scale(wd)
        q = torch.where(wd.abs() > delta, sign_nonzero(wd) * scale, torch.zeros_like(wd))
        return straight_through(w, q)


def _per_channel_builder(cls: type) -> object:
    def build(match: re.Match[str], arg: str | None, opts: Options) -> Format:
        if arg is not None:
            raise opts.bad_arg(arg, f"no argument after {match.group(0)}")
        kwargs: dict[str, object] = {"per_channel": opts.get_bool("per_channel", False)}
        if cls is Ternary:
            kwargs["ratio"] = opts.get_float("ratio", 0.7)
        opts.finish()
        return cls(**kwargs)

    return build


register_format("binary", "binary[,per_channel=on]")(_per_channel_builder(Binary))  # type: ignore[arg-type]
register_format("ternary", "ternary[,per_channel=on][,ratio=0.7]")(_per_channel_builder(Ternary))  # type: ignore[arg-type]
