"""Approximate layers: convolution and linear maps whose multiplies go through a product table.

They subclass nn.Conv2d / nn.Linear (same parameters and state-dict keys), hold the multiplier,
the calibrated activation quantizer and the weight quantizer, and compute through
`FusedTableMac`: the fused float chain of the kernels (`lut_*_float`) forward, in training too,
and gradients from the saved input (bit-identical to the composed `TableMac`, which traced models
use). Activation ranges are fixed by calibration; weight ranges follow the current weights, so
fine-tuning and evaluation run the same arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

from axdnn.arith import Multiplier, get_multiplier
from axdnn.cost.profile import HardwareProfile
from axdnn.errors import ConfigError
from axdnn.kernels import ActQuant, ConvGeometry, ZeroPoints
from axdnn.kernels.affine import code_of
from axdnn.nn.base import ApproxLayer
from axdnn.nn.cloning import clone_conv, clone_linear
from axdnn.nn.functional import ConvOp, LinearOp, TableMac, TableOperands, WeightCodes, weight_codes
from axdnn.nn.gradients import table_gradient, table_input_grad, table_weight_grad
from axdnn.nn.observers import Observer
from axdnn.nn.plan import MultiplierSpec
from axdnn.nn.quant import QuantScheme, code_index, code_range
from axdnn.runtime import tracing


class TableLayer(ApproxLayer):
    """Base of product-table layers (ApproxConv2d, ApproxLinear, a user's own): the multiplier,
    quantizer state, calibration and the table MAC. A subclass calls `_setup(spec)` once its
    torch parameters exist, and computes with `_table_forward(op, x)` where `op` is a ConvOp or
    LinearOp; `mac_weight()` gives the weight in the shape `op` expects (override it for, e.g.,
    a Conv1d seen as a 1 x k Conv2d)."""

    def mac_weight(self) -> torch.Tensor:
        """The weight as the MAC sees it (default: the module's own weight)."""
        return self.weight

    def _setup(self, spec: MultiplierSpec, multiplier: Multiplier | None = None) -> None:
        multiplier = get_multiplier(spec.multiplier) if multiplier is None else multiplier
        self.multiplier = multiplier
        self.spec = spec
        self.a_scheme = QuantScheme(
            multiplier.a_bits, multiplier.a_signed, False, False, spec.act_observer
        )
        self.b_scheme = QuantScheme(
            multiplier.b_bits,
            multiplier.b_signed,
            symmetric=multiplier.b_signed,
            per_channel=spec.per_channel,
            observer=spec.weight_observer,
        )
        grad = None
        if spec.gradient == "table":
            grad = table_gradient(
                multiplier.table, multiplier.a_signed, multiplier.b_signed, spec.gradient_rank
            )
        self.operands = TableOperands(
            multiplier.table,
            self.a_scheme,
            self.b_scheme,
            spec.gradient,
            grad,
            spec.backend,
            spec.acc_bits,
        )
        self.register_buffer("act_scale", torch.ones(()))
        self.register_buffer("act_zero", torch.zeros((), dtype=torch.int64))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))
        self.register_buffer("act_hist", torch.zeros(1 << multiplier.a_bits, dtype=torch.int64))
        self._observer: Observer | None = None
        self._weight_cache: tuple | None = None

    def start_calibration(self, seed: int = 0) -> None:
        self._observer = Observer(self.a_scheme, seed=seed)

    def finish_calibration(self) -> None:
        if self._observer is None or self._observer.lo is None:
            raise ConfigError(f"layer {self.layer_name!r} saw no calibration data")
        scale, zero = self._observer.qparams()
        self.act_scale.copy_(scale.reshape(()))
        self.act_zero.copy_(zero.reshape(()))
        self.calibrated.fill_(True)
        self._observer = None

    def weight_codes(self) -> WeightCodes:
        """The quantized weights (scale, zero point, table indices, code sums), cached until
        the weights change (fine-tuning recomputes them once per step, inference never)."""
        weight = self.mac_weight()
        if tracing():  # traced: the codes become part of the graph (no cache key to read)
            return self._weight_codes_of(weight)
        key = (weight._version, weight.data_ptr(), tuple(weight.shape))
        if self._weight_cache is None or self._weight_cache[0] != key:
            self._weight_cache = (key, self._weight_codes_of(weight))
        return self._weight_cache[1]

    def _weight_codes_of(self, weight: torch.Tensor) -> WeightCodes:
        observer = Observer(self.b_scheme, axis=0)
        observer.observe(weight)
        scale, zero = observer.qparams()
        if not self.b_scheme.per_channel:
            scale = scale.expand(weight.shape[0])
            zero = zero.expand(weight.shape[0])
        device = weight.device
        scale, zero = scale.to(device).contiguous(), zero.to(device).contiguous()
        return weight_codes(weight, scale, zero, self.b_scheme)

    def weight_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero point of the current weights (per output channel)."""
        codes = self.weight_codes()
        return codes.scale, codes.zero

    def _record_hist(self, x: torch.Tensor) -> None:
        from axdnn.nn.quant import code_index, qparams, quantize_codes

        if self._observer is None or self._observer.lo is None:
            return
        scale, zero = qparams(self._observer.lo, self._observer.hi, self.a_scheme)
        codes = code_index(
            quantize_codes(x.detach(), scale, zero, self.a_scheme), self.a_scheme.bits
        )
        self.act_hist += torch.bincount(codes.flatten().cpu(), minlength=self.act_hist.numel())

    def _table_forward(self, op, x: torch.Tensor) -> torch.Tensor:
        if self._observer is not None:
            self._observer.observe(x)
            self._record_hist(x)
            return op.float_op(x, self.mac_weight())
        if not tracing() and not bool(self.calibrated):
            raise ConfigError(
                f"approximate layer {self.layer_name!r} is not calibrated; build it with "
                "axdnn.nn.approximate(model, plan, calibration_data)"
            )
        args = (x.float(), self.mac_weight(), op, self.operands, self.act_scale, self.act_zero)
        if tracing():
            return TableMac.apply(*args, self.weight_codes(), torch.is_grad_enabled())
        if not torch.is_grad_enabled():  # inference: no autograd node, the arguments cached
            act, zero, scale = self._mac_arguments(self.weight_codes())
            return op.lut_float(args[0], act, self.weight_codes().index, self.operands, zero, scale)
        return FusedTableMac.apply(*args, self.weight_codes())

    def _mac_arguments(self, wc: WeightCodes) -> tuple[ActQuant, ZeroPoints, torch.Tensor]:
        """`mac_arguments` of the current weight codes and activation quantizer, remembered
        until either changes (a batch-1 forward would otherwise spend much of its time here)."""
        key = (id(wc), self.act_scale._version, self.act_zero._version)
        cached = getattr(self, "_mac_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, mac_arguments(self.operands, self.act_scale, self.act_zero, wc))
            self._mac_cache = cached
        return cached[1]

    def describe(self) -> str:
        return f"multiplier={self.multiplier.name}, gradient={self.spec.gradient}"

    def hardware_profile(self) -> HardwareProfile:
        """Integer operands of the multiplier's widths and its energy relative to an exact one."""
        return multiplier_profile(self.multiplier, self.spec.acc_bits)


class FusedTableMac(torch.autograd.Function):
    """`TableMac` with the fused forward: y = lut_*_float(x) (one native pass where the backend
    fuses; bit-identical to TableMac's composed chain), and the same gradients, recomputed from
    the saved float input and weight codes in backward instead of codes saved in forward."""

    @staticmethod
    def forward(ctx, x, w, op, tab: TableOperands, xs, xz, wc: WeightCodes):
        act, zero, scale = mac_arguments(tab, xs, xz, wc)
        y = op.lut_float(x, act, wc.index, tab, zero, scale)
        ctx.op, ctx.tab, ctx.wc, ctx.zx = op, tab, wc, zero.x
        ctx.save_for_backward(x, w, xs, xz)
        return y

    @staticmethod
    def backward(ctx, grad):
        x, w, xs, xz = ctx.saved_tensors
        op, tab, wc = ctx.op, ctx.tab, ctx.wc
        need_x, need_w = ctx.needs_input_grad[:2]
        a, b = tab.a_scheme, tab.b_scheme
        view = [-1] + [1] * (w.dim() - 1)
        ws, wz = wc.scale.reshape(view), wc.zero.reshape(view)
        qw = code_of(wc.index, 1 << b.bits, b.signed)
        qx, x_mask = _codes_and_mask(x, xs, xz, a)
        if tab.gradient == "table":
            gx, gw = _table_grads(ctx, grad, qx, qw, ws, wz)
        else:
            w_deq = (qw - wz).to(grad.dtype) * ws
            x_deq = (qx - xz) * xs
            gx = op.grad_input(x.shape, w_deq, grad) if need_x else None
            gw = op.grad_weight(x_deq, w.shape, grad) if need_w else None
        gx = gx * x_mask if gx is not None else None
        gw = gw * _codes_and_mask(w, ws, wz, b)[1] if gw is not None else None
        return gx, gw, None, None, None, None, None


def mac_arguments(tab: TableOperands, xs, xz, wc: WeightCodes):
    """The activation quantizer, zero points and output scale (x scale times weight scales) of
    the fused `lut_*_float` call."""
    a, b = tab.a_scheme, tab.b_scheme
    zx = int(xz)
    zero = ZeroPoints(zx, wc.zero.reshape(-1).long(), a.signed, b.signed, wc.sums)
    return ActQuant(xs, zx, *code_range(a), a.bits), zero, xs * wc.scale


def _codes_and_mask(x, scale, zero, scheme: QuantScheme) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes of x as float (exact) and where x lies inside the quantization range (the
    straight-through gradient's support): `quantize_codes` and TableMac's mask in one pass."""
    qmin, qmax = code_range(scheme)
    t = x / scale
    codes = (torch.round(t) + zero).clamp(qmin, qmax)
    t = t + zero
    return codes, (t >= qmin - 0.5) & (t <= qmax + 0.5)


def _table_grads(ctx, grad, qx, qw, ws, wz):
    """The table-difference gradients (`axdnn.nn.gradients`) from float codes of x and w."""
    op, tab, zx = ctx.op, ctx.tab, ctx.zx
    x_shape, w_shape = ctx.saved_tensors[0].shape, ctx.saved_tensors[1].shape
    xi = code_index(qx.long(), tab.a_scheme.bits)
    wi = code_index(qw, tab.b_scheme.bits)
    gx = gw = None
    if ctx.needs_input_grad[0]:
        wzf = wz.to(grad.dtype)
        gx = table_input_grad(op, grad, xi, wi, ws, wzf, tab.table_grad, x_shape)
    if ctx.needs_input_grad[1]:
        pad = zx & ((1 << tab.a_scheme.bits) - 1)
        xi_padded = op.pad(xi.to(torch.float32), float(pad)).long()
        xs = ctx.saved_tensors[2]
        gw = table_weight_grad(op, grad, xi_padded, wi, xs, zx, tab.table_grad, w_shape)
    return gx, gw


class ApproxConv2d(TableLayer, nn.Conv2d):
    """nn.Conv2d whose products come from a multiplier's table (any stride/padding/groups)."""

    @classmethod
    def from_float(
        cls, conv: nn.Conv2d, spec: MultiplierSpec, *, name: str = "", multiplier=None
    ) -> ApproxConv2d:
        """`multiplier`: an already built Multiplier for `spec.multiplier` (saves a lookup)."""
        if conv.padding_mode != "zeros":
            raise ConfigError(
                f"cannot approximate a Conv2d with padding_mode={conv.padding_mode!r}"
            )
        padding = _numeric_padding(conv)
        layer = clone_conv(cls, conv, padding)
        layer._setup(spec, multiplier)
        return layer._named(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        geom = ConvGeometry.of(
            self.kernel_size, self.stride, self.padding, self.dilation, self.groups
        )
        y = self._table_forward(ConvOp(geom), x)
        return y if self.bias is None else y + self.bias.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.describe()}"


class ApproxLinear(TableLayer, nn.Linear):
    """nn.Linear over any leading dimensions, products from a multiplier's table."""

    @classmethod
    def from_float(
        cls, linear: nn.Linear, spec: MultiplierSpec, *, name: str = "", multiplier=None
    ) -> ApproxLinear:
        layer = clone_linear(cls, linear)
        layer._setup(spec, multiplier)
        return layer._named(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = self._table_forward(LinearOp(), x.reshape(-1, x.shape[-1]))
        y = y.reshape(*lead, self.out_features)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self.describe()}"


def multiplier_profile(m: Multiplier, acc_bits: int | None = None) -> HardwareProfile:
    """How the cost model prices products from `m`'s table: integer operands of its widths and
    its energy relative to an exact multiplier (layers and functional sites alike)."""
    return HardwareProfile(
        kind="multiplier",
        weight_bits=m.b_bits,
        act_bits=m.a_bits,
        arith="int",
        acc_bits=acc_bits,
        multiplier=m.name,
        mul_energy_scale=relative_mul_energy(m),
    )


def relative_mul_energy(multiplier: Multiplier) -> float:
    """Published power of `multiplier` over that of the exact multiplier it replaces: its
    `power_mw` divided by `provenance['exact_power_mw']` when both are known, else 1.0."""
    power = multiplier.power_mw
    exact = multiplier.provenance.get("exact_power_mw") if multiplier.provenance else None
    if power is None or not isinstance(exact, (int, float)) or exact <= 0:
        return 1.0
    return float(power) / float(exact)


def _numeric_padding(conv: nn.Conv2d) -> tuple[int, int]:
    if not isinstance(conv.padding, str):
        return conv.padding
    if conv.padding == "valid":
        return (0, 0)
    total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size, strict=True)]
    if any(t % 2 for t in total):
        raise ConfigError("cannot approximate a Conv2d with asymmetric padding='same'")
    return tuple(t // 2 for t in total)


APPROX_LAYERS = (ApproxConv2d, ApproxLinear)
