"""PACT, parameterized clipping activation (Choi et al. 2018, arXiv:1805.06085): y = clip(x, 0, a)
quantized to k bits on the grid a * i / (2^k - 1), with a learnable clipping level a. Gradients
(eqs. 1-3 of the paper): x receives the upstream gradient where 0 <= x < a (straight through the
rounding), a receives the sum of the upstream gradient where x >= a."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from axdnn.errors import FormatError
from axdnn.formats.base import Format, Options, register_format, with_options

MIN_ALPHA = 1e-8  # the clipping level is clamped to this in the forward pass


def _pact_forward(x: Tensor, alpha: Tensor, levels: int) -> Tensor:
    scale = alpha / levels
    return torch.round(torch.minimum(x.clamp(min=0.0), alpha) / scale) * scale


class _PactFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, levels: int) -> Tensor:  # noqa: D102
        a = alpha.clamp_min(MIN_ALPHA).to(x.dtype)
        ctx.save_for_backward(x, a)
        ctx.alpha_shape = alpha.shape
        return _pact_forward(x, a, levels)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:  # noqa: D102
        x, a = ctx.saved_tensors
        zero = torch.zeros_like(grad)
        gx = torch.where((x >= 0) & (x < a), grad, zero)
        ga = torch.where(x >= a, grad, zero).sum().reshape(ctx.alpha_shape)
        return gx, ga, None


def pact(x: Tensor, alpha: Tensor, bits: int) -> Tensor:
    """PACT activation of `x` with clipping level `alpha` (a scalar tensor) at `bits` bits."""
    if not 1 <= bits <= 32:
        raise FormatError(f"PACT bits={bits} is invalid; expected 1..32")
    if alpha.numel() != 1:
        raise FormatError(f"PACT alpha must be a scalar tensor, got shape {tuple(alpha.shape)}")
    return _PactFunction.apply(x, alpha, 2**bits - 1)


class PACT(nn.Module):
    """PACT activation module with a learnable clipping level `alpha` (initialised to 10, as in
    the paper); replaces ReLU. L2 regularisation of alpha is left to the training loop."""

    def __init__(self, bits: int = 4, alpha: float = 10.0) -> None:
        super().__init__()
        PactFormat(bits, alpha)  # validates
        self.bits = bits
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))

    def forward(self, x: Tensor) -> Tensor:
        return pact(x, self.alpha, self.bits)

    @property
    def format(self) -> PactFormat:
        """The fixed-alpha format this module currently implements."""
        return PactFormat(self.bits, float(self.alpha.detach().clamp_min(MIN_ALPHA)))

    def extra_repr(self) -> str:
        return f"bits={self.bits}, alpha={float(self.alpha.detach()):.4g}"


@dataclass(frozen=True)
class PactFormat(Format):
    """`pact:K[,alpha=A]`: clip to [0, A] and quantize to K bits (unsigned), alpha fixed."""

    k: int
    alpha: float = 10.0

    kind: ClassVar[str] = "pact"

    def __post_init__(self) -> None:
        if not 1 <= self.k <= 32:
            raise FormatError(f"PACT bits={self.k} is invalid; expected 1..32")
        if not float(self.alpha) > 0:
            raise FormatError(f"PACT alpha={self.alpha!r} is invalid; expected a positive number")
        object.__setattr__(self, "alpha", float(self.alpha))

    @property
    def bits(self) -> int:
        return self.k

    @property
    def step(self) -> float:
        return self.alpha / (2**self.k - 1)

    @property
    def spec(self) -> str:
        return with_options(f"pact:{self.k}", [("alpha", self.alpha, 10.0)])

    def module(self) -> PACT:
        """A trainable PACT module starting from this format's alpha."""
        return PACT(self.k, self.alpha)

    def _quantize(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        alpha = torch.tensor(self.alpha, dtype=x.dtype, device=x.device)
        return pact(x, alpha, self.k)


@register_format("pact", "pact:K[,alpha=A] (K=1..32 bits, clipping level A > 0, default 10)")
def _build_pact(match: re.Match[str], arg: str | None, opts: Options) -> Format:
    if arg is None or not re.fullmatch(r"\d+", arg):
        raise opts.bad_arg(arg, "the number of bits K, e.g. pact:4")
    fmt = PactFormat(int(arg), opts.get_float("alpha", 10.0) or 0.0)
    opts.finish()
    return fmt
