"""DoReFa-Net weight quantization (Zhou et al. 2016, arXiv:1606.06160, eq. 9): for k > 1 bits,
w_q = 2 quantize_k(tanh(w) / (2 max|tanh(w)|) + 1/2) - 1 with quantize_k(r) = round((2^k-1) r) /
(2^k-1), the rounding straight-through and the normalisation differentiated; k = 1 gives
sign(w) E|w| with an identity gradient; k = 32 is full precision."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from axdnn.errors import FormatError
from axdnn.formats.base import Format, Options, register_format
from axdnn.formats.ste import round_ste, straight_through


def sign_nonzero(x: Tensor) -> Tensor:
    """sign(x) with sign(0) = +1, so binarized values are always +-1."""
    return torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))


@dataclass(frozen=True)
class DoReFa(Format):
    """`dorefa:K`: DoReFa weight quantization to K bits (values on the grid 2i/(2^K-1) - 1 for
    K > 1). Data dependent: the scale comes from the tensor's max |tanh|, hence not idempotent."""

    k: int

    kind: ClassVar[str] = "dorefa"

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 32:
            raise FormatError(f"DoReFa bits k={self.k} is invalid; expected 1..32")

    @property
    def bits(self) -> int:
        return self.k

    @property
    def spec(self) -> str:
        return f"dorefa:{self.k}"

    def _quantize(self, w: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.k == 32 or w.numel() == 0:
            return w
        if self.k == 1:
            scale = w.detach().abs().mean()
            return straight_through(w, sign_nonzero(w.detach()) * scale)
        t = torch.tanh(w)
        peak = t.abs().max()
        peak = torch.where(peak > 0, peak, torch.ones_like(peak))  # all zero: r = 1/2 anyway
        levels = 2**self.k - 1
        r = t / (2 * peak) + 0.5
        return 2 * (round_ste(r * levels) / levels) - 1


@register_format("dorefa", "dorefa:K (DoReFa weights, K=1..32 bits)")
def _build_dorefa(match: re.Match[str], arg: str | None, opts: Options) -> Format:
    if arg is None or not re.fullmatch(r"\d+", arg):
        raise opts.bad_arg(arg, "the number of bits K, e.g. dorefa:4")
    opts.finish()
    return DoReFa(int(arg))
