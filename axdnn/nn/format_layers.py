"""Format layers: convolution and linear maps whose weights and inputs are held in number formats
(fixed point, floats, FPEC, PACT, DoReFa, binary/ternary) and computed in float.

They subclass nn.Conv2d / nn.Linear (same parameters and state-dict keys). Weights are quantized
with the weight format and inputs with the activation format on every call, through straight-
through estimators, so evaluation and fine-tuning run the same numbers. With FPEC operands the
layer computes the compensated MAC of Compensated-DNN (Jain et al., DAC 2018): the MAC of the
stored fixed-point values plus sum_k x_k e_w,k + w_k e_x,k over the non-skipped values. A PACT
activation format (Choi et al. 2018) becomes a learnable clipping level `act_alpha`; when the
spec names no alpha and calibration data is given, alpha starts at the largest calibration input
(the paper's fixed start of 10 suits only unnormalised activations), else at the spec's alpha.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from axdnn.cost.profile import HardwareProfile
from axdnn.errors import ConfigError
from axdnn.formats import (
    Binary,
    DoReFa,
    FixedPoint,
    FloatFormat,
    Format,
    Fpec,
    Identity,
    PactFormat,
    Ternary,
    clipped_straight_through,
    compensated_conv2d,
    compensated_linear,
    pact,
    parse_format,
)
from axdnn.nn.base import ApproxLayer
from axdnn.nn.cloning import clone_conv, clone_linear
from axdnn.nn.plan import FormatSpec

INTEGER_FORMATS = (FixedPoint, Fpec, PactFormat, DoReFa, Binary, Ternary)


def operand_profile(fmt: Format | None) -> dict[str, Any]:
    """How the hardware holds one operand: compute bits, arithmetic kind ('int', 'float' with
    e/m bits, or 'fp32') and FPEC compensation bits (stored bits and error-estimate width)."""
    if fmt is None or isinstance(fmt, Identity):
        return {
            "bits": 32,
            "arith": "fp32",
            "exp_bits": 8,
            "man_bits": 23,
            "extra_bits": 0,
            "comp_bits": 0,
        }
    if isinstance(fmt, FloatFormat):
        return {
            "bits": fmt.bits,
            "arith": "float",
            "exp_bits": fmt.exp_bits,
            "man_bits": fmt.man_bits - fmt.trunc,
            "extra_bits": 0,
            "comp_bits": 0,
        }
    if isinstance(fmt, Fpec):
        return {
            "bits": fmt.compute_bits,
            "arith": "int",
            "exp_bits": None,
            "man_bits": None,
            "extra_bits": fmt.comp_bits,
            "comp_bits": 1 + fmt.mag_bits,
        }
    if isinstance(fmt, INTEGER_FORMATS):
        return {
            "bits": fmt.bits,
            "arith": "int",
            "exp_bits": None,
            "man_bits": None,
            "extra_bits": 0,
            "comp_bits": 0,
        }
    raise ConfigError(f"format {fmt.spec!r} has no hardware description for the cost model")


def _expected_comp_fraction(fmt: Fpec) -> float:
    """Fraction of values compensated when the rounding error is uniform over a step: 1 - 2t."""
    return 1.0 - 2.0 * fmt.threshold


class FormatMixin(ApproxLayer):
    """Weight/activation formats, their straight-through quantization and the compensated MAC."""

    def _setup_formats(self, weight_format: str | Format | None, act_format: str | Format | None):
        wf = parse_format(weight_format, "weight_format") if weight_format is not None else None
        af = parse_format(act_format, "act_format") if act_format is not None else None
        if wf is None and af is None:
            raise ConfigError("a format layer needs a weight_format or an act_format (or both)")
        if isinstance(wf, PactFormat):
            raise ConfigError(
                f"weight_format {wf.spec!r}: PACT clips to [0, alpha] and is an activation "
                "format; for weights use fxp/int, fpec, float, dorefa, binary or ternary"
            )
        self.weight_format, self.act_format = wf, af
        self._alpha_from_data = False
        if isinstance(af, PactFormat):
            self.act_alpha = nn.Parameter(torch.tensor(af.alpha, device=self.weight.device))
            given = isinstance(act_format, PactFormat) or "alpha=" in act_format.replace(" ", "")
            self._alpha_from_data = not given
        # compensated / seen activation values (FPEC activations), counted while calibrating
        self.register_buffer("act_comp_stats", torch.zeros(2, dtype=torch.float64))
        self._counting = False
        self._seen_max: float | None = None

    # ---- calibration: FPEC compensation counts and the PACT starting alpha ---------------------
    def start_calibration(self, seed: int = 0) -> None:
        """Start counting compensated FPEC activations and, for a PACT spec without an explicit
        alpha, tracking the largest input, which becomes the starting clipping level."""
        del seed
        self.act_comp_stats.zero_()
        self._counting, self._seen_max = True, None

    def finish_calibration(self) -> None:
        self._counting = False
        if self._alpha_from_data and self._seen_max is not None and self._seen_max > 0:
            with torch.no_grad():
                self.act_alpha.fill_(self._seen_max)
        self._seen_max = None

    # ---- quantization --------------------------------------------------------------------------
    def _operand(self, fmt: Format | None, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(value in the format with an STE, FPEC error estimate or None)."""
        if fmt is None:
            return x, None
        if isinstance(fmt, Fpec):
            enc = fmt.encode(x.detach())
            fx = fmt.fixed
            value = clipped_straight_through(x, enc.value, fx.min_value, fx.max_value)
            return value, enc.comp
        return fmt.quantize(x), None

    def quantized_weight(self) -> tuple[Tensor, Tensor | None]:
        """The weights in the weight format (differentiable) and their FPEC error estimates."""
        return self._operand(self.weight_format, self.weight)

    def quantized_input(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The input in the activation format (differentiable) and its FPEC error estimates."""
        if isinstance(self.act_format, PactFormat):
            if self._counting:
                top = float(x.detach().max()) if x.numel() else 0.0
                self._seen_max = top if self._seen_max is None else max(self._seen_max, top)
            return pact(x, self.act_alpha, self.act_format.k), None
        xq, ex = self._operand(self.act_format, x)
        if ex is not None and self._counting:
            self.act_comp_stats += torch.tensor(
                [float((ex != 0).sum()), float(ex.numel())], dtype=torch.float64
            )
        return xq, ex

    def _mac(self, op, x: Tensor) -> Tensor:
        xq, ex = self.quantized_input(x)
        wq, ew = self.quantized_weight()
        if ex is not None and ew is not None:
            return op(xq, ex, wq, ew, self.bias)
        y = op.plain(xq, wq, self.bias)
        if ew is not None:
            y = y + op.plain(xq, ew, None)
        if ex is not None:
            y = y + op.plain(ex, wq, None)
        return y

    # ---- description for the cost model and reports --------------------------------------------
    def comp_fractions(self) -> tuple[float, float]:
        """(weights, activations) fraction of FPEC values that are compensated (ZEB clear); the
        activation figure is counted during calibration, else the uniform-error expectation."""
        fw = fa = 0.0
        if isinstance(self.weight_format, Fpec):
            comp = self.weight_format.encode(self.weight.detach()).comp
            fw = float((comp != 0).float().mean()) if comp.numel() else 0.0
        if isinstance(self.act_format, Fpec):
            done, seen = (float(v) for v in self.act_comp_stats)
            fa = done / seen if seen > 0 else _expected_comp_fraction(self.act_format)
        return fw, fa

    def hardware_profile(self) -> HardwareProfile:
        """Operand widths and arithmetic of the formats, with FPEC compensation bits."""
        w, a = operand_profile(self.weight_format), operand_profile(self.act_format)
        if "float" in (w["arith"], a["arith"]) and "fp32" not in (w["arith"], a["arith"]):
            wide = w if (w["man_bits"] or 0) >= (a["man_bits"] or 0) else a
            arith, exp_bits, man_bits = "float", wide["exp_bits"], wide["man_bits"]
        elif "fp32" in (w["arith"], a["arith"]):
            arith, exp_bits, man_bits = "fp32", 8, 23
        else:
            arith, exp_bits, man_bits = "int", None, None
        fw, fa = self.comp_fractions()
        return HardwareProfile(
            kind="format",
            weight_format=self.weight_format.spec if self.weight_format else None,
            act_format=self.act_format.spec if self.act_format else None,
            weight_bits=w["bits"],
            act_bits=a["bits"],
            arith=arith,
            exp_bits=exp_bits,
            man_bits=man_bits,
            weight_extra_bits=w["extra_bits"],
            act_extra_bits=a["extra_bits"],
            weight_comp_bits=w["comp_bits"],
            act_comp_bits=a["comp_bits"],
            weight_comp_fraction=fw,
            act_comp_fraction=fa,
        )

    def describe(self) -> str:
        parts = []
        if self.weight_format is not None:
            parts.append(f"weight_format={self.weight_format.spec}")
        if self.act_format is not None:
            parts.append(f"act_format={self.act_format.spec}")
        return ", ".join(parts)


class _ConvOp:
    def __init__(self, conv: nn.Conv2d) -> None:
        self.kw = dict(
            stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups
        )

    def __call__(self, xq, ex, wq, ew, bias):
        return compensated_conv2d(xq, ex, wq, ew, bias, **self.kw)

    def plain(self, x, w, bias):
        return F.conv2d(x, w, bias, **self.kw)


class _LinearOp:
    def __call__(self, xq, ex, wq, ew, bias):
        return compensated_linear(xq, ex, wq, ew, bias)

    def plain(self, x, w, bias):
        return F.linear(x, w, bias)


class FormatConv2d(FormatMixin, nn.Conv2d):
    """nn.Conv2d with weights and inputs in number formats (compensated MAC for FPEC)."""

    @classmethod
    def from_float(cls, conv: nn.Conv2d, spec: FormatSpec, *, name: str = "") -> FormatConv2d:
        if conv.padding_mode != "zeros":
            raise ConfigError(
                f"cannot put a Conv2d with padding_mode={conv.padding_mode!r} in number formats"
            )
        layer = clone_conv(cls, conv)
        layer._setup_formats(spec.weight_format, spec.act_format)
        return layer._named(name)

    def forward(self, x: Tensor) -> Tensor:
        return self._mac(_ConvOp(self), x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.describe()}"


class FormatLinear(FormatMixin, nn.Linear):
    """nn.Linear with weights and inputs in number formats (compensated MAC for FPEC)."""

    @classmethod
    def from_float(cls, linear: nn.Linear, spec: FormatSpec, *, name: str = "") -> FormatLinear:
        layer = clone_linear(cls, linear)
        layer._setup_formats(spec.weight_format, spec.act_format)
        return layer._named(name)

    def forward(self, x: Tensor) -> Tensor:
        return self._mac(_LinearOp(), x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.describe()}"


FORMAT_LAYERS = (FormatConv2d, FormatLinear)

__all__ = ["FORMAT_LAYERS", "FormatConv2d", "FormatLinear", "FormatMixin", "operand_profile"]
