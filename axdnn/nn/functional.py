"""The integer MAC with a product table, as an autograd function shared by every approximate layer.

Forward (exact integers, DESIGN.md): with codes q_x, q_w, zero points z_x, z_w and table M,

    acc = sum_k M[q_x, q_w] - z_w * sum_k (q_x - z_x) - z_x * sum_k q_w
    y   = s_x * s_w * acc

which with the exact table equals s_x * s_w * sum_k (q_x - z_x)(q_w - z_w), i.e. ordinary integer
quantized inference, bit for bit. Padding feeds the code z_x (real zero) into the multiplier.
The kernels compute it (`axdnn.kernels.affine`); without autograd the whole chain (quantize,
MAC, dequantize) goes to `lut_*_float`, which the native backend fuses, bit-identical to the
composed path that training uses. Backward: straight-through (exact product of the dequantized
operands) or the table-difference gradient (see `axdnn.nn.gradients`); inputs outside the
quantization range get no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn import grad as nn_grad

from axdnn.kernels import (
    ActQuant,
    ConvGeometry,
    ZeroPoints,
    lut_conv2d,
    lut_conv2d_float,
    lut_linear,
    lut_linear_float,
)
from axdnn.kernels.affine import code_of, dequantize, saturate
from axdnn.nn.gradients import TableGradient
from axdnn.nn.quant import QuantScheme, code_index, code_range, quantize_codes
from axdnn.runtime import tracing


@dataclass(frozen=True)
class WeightCodes:
    """A layer's quantized weights, kept until the weights change: per-output-channel scale and
    zero point, table indices (uint8 for up to 8 bits) and per-channel sums of the codes."""

    scale: torch.Tensor
    zero: torch.Tensor
    index: torch.Tensor
    sums: torch.Tensor


def weight_codes(w: torch.Tensor, scale, zero, scheme: QuantScheme) -> WeightCodes:
    """Quantize weights (out channels first) with per-channel `scale` and `zero`."""
    view = [-1] + [1] * (w.dim() - 1)
    codes = quantize_codes(w.detach(), scale.reshape(view), zero.reshape(view), scheme)
    sums = codes.reshape(codes.shape[0], -1).sum(dim=1)
    return WeightCodes(scale, zero, _narrow(code_index(codes, scheme.bits), scheme.bits), sums)


@dataclass(frozen=True)
class TableOperands:
    """What a layer multiplies with: the table, the operand schemes and gradient choice."""

    table: torch.Tensor
    a_scheme: QuantScheme
    b_scheme: QuantScheme
    gradient: str = "ste"
    table_grad: TableGradient | None = None
    backend: str = "auto"
    acc_bits: int | None = None


class ConvOp:
    """A 2-D convolution as seen by the table MAC."""

    def __init__(self, geom: ConvGeometry) -> None:
        self.geom = geom

    def channel(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(1, -1, 1, 1)

    def lut(self, xi, wi, tab: TableOperands, zero: ZeroPoints) -> torch.Tensor:
        return lut_conv2d(xi, wi, tab.table, self.geom, backend=tab.backend, zero=zero)

    def lut_float(self, x, act: ActQuant, wi, tab: TableOperands, zero, scale) -> torch.Tensor:
        return lut_conv2d_float(
            x, act, wi, tab.table, self.geom, zero, scale, tab.acc_bits, tab.backend
        )

    def float_op(self, x, w):
        g = self.geom
        return F.conv2d(x, w, None, g.stride, g.padding, g.dilation, g.groups)

    def grad_input(self, x_shape, w_eff, grad):
        g = self.geom
        return nn_grad.conv2d_input(x_shape, w_eff, grad, g.stride, g.padding, g.dilation, g.groups)

    def grad_weight(self, x_eff, w_shape, grad, padded: bool = False):
        g = self.geom
        padding = (0, 0) if padded else g.padding
        return nn_grad.conv2d_weight(x_eff, w_shape, grad, g.stride, padding, g.dilation, g.groups)

    def pad(self, t: torch.Tensor, value: float) -> torch.Tensor:
        ph, pw = self.geom.padding
        return F.pad(t, (pw, pw, ph, ph), value=value)


class LinearOp:
    """A linear map over the last dimension of a 2-D input, as seen by the table MAC."""

    def channel(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(1, -1)

    def lut(self, xi, wi, tab: TableOperands, zero: ZeroPoints) -> torch.Tensor:
        return lut_linear(xi, wi, tab.table, backend=tab.backend, zero=zero)

    def lut_float(self, x, act: ActQuant, wi, tab: TableOperands, zero, scale) -> torch.Tensor:
        return lut_linear_float(x, act, wi, tab.table, zero, scale, tab.acc_bits, tab.backend)

    def float_op(self, x, w):
        return F.linear(x, w)

    def grad_input(self, x_shape, w_eff, grad):
        return grad @ w_eff

    def grad_weight(self, x_eff, w_shape, grad, padded: bool = False):
        return grad.T @ x_eff

    def pad(self, t: torch.Tensor, value: float) -> torch.Tensor:
        return t


def _narrow(index: torch.Tensor, bits: int) -> torch.Tensor:
    """Table indices as uint8 where they fit: kernels read 8x less data and skip range checks."""
    return index.to(torch.uint8) if bits <= 8 else index


def _in_range(x, scale, zero, scheme: QuantScheme) -> torch.Tensor:
    qmin, qmax = code_range(scheme)
    t = x / scale + zero
    return (t >= qmin - 0.5) & (t <= qmax + 0.5)


class TableMac(torch.autograd.Function):
    """y = s_x * s_w * (table MAC with exact zero-point corrections); see the module docstring.

    `wc` holds the weights' codes (computed from `w` by the caller); `track=False` (the caller
    runs without autograd) skips what only backward needs."""

    @staticmethod
    def forward(ctx, x, w, op, tab: TableOperands, xs, xz, wc: WeightCodes, track: bool = True):
        a, b = tab.a_scheme, tab.b_scheme
        zx = xz if tracing() and not track else int(xz)  # traced: a 0-dim tensor the kernel reads
        zero = ZeroPoints(zx, wc.zero.reshape(-1).long(), a.signed, b.signed, wc.sums)
        scale = xs * wc.scale
        if not track:  # inference: the backend may fuse quantization, MAC and dequantization
            act = ActQuant(xs, zx, *code_range(a), a.bits)
            return op.lut_float(x, act, wc.index, tab, zero, scale)
        qx = quantize_codes(x, xs, xz, a)
        acc = op.lut(_narrow(code_index(qx, a.bits), a.bits), wc.index, tab, zero)
        y = dequantize(saturate(acc, tab.acc_bits), scale, 1)
        view = [-1] + [1] * (w.dim() - 1)
        ws, wz = wc.scale, wc.zero
        ctx.op, ctx.tab, ctx.x_shape, ctx.w_shape = op, tab, x.shape, w.shape
        ctx.x_mask = _in_range(x, xs, xz, a) if ctx.needs_input_grad[0] else None
        ctx.w_mask = (
            _in_range(w, ws.reshape(view), wz.reshape(view), b) if ctx.needs_input_grad[1] else None
        )
        qw = code_of(wc.index, 1 << b.bits, b.signed).to(torch.int16)
        ctx.save_for_backward(qx.to(torch.int16), qw, xs, xz, ws, wz)
        return y

    @staticmethod
    def backward(ctx, grad):
        qx, qw, xs, xz, ws, wz = ctx.saved_tensors
        op, tab = ctx.op, ctx.tab
        qx, qw = qx.long(), qw.long()
        shape = [-1] + [1] * (qw.dim() - 1)
        if tab.gradient == "table":
            gx, gw = _table_grads(ctx, grad, qx, qw, xs, xz, ws, wz)
        else:
            x_deq = (qx - xz).to(grad.dtype) * xs
            w_deq = (qw - wz.reshape(shape)).to(grad.dtype) * ws.reshape(shape)
            gx = op.grad_input(ctx.x_shape, w_deq, grad) if ctx.needs_input_grad[0] else None
            gw = op.grad_weight(x_deq, ctx.w_shape, grad) if ctx.needs_input_grad[1] else None
        gx = gx * ctx.x_mask if gx is not None else None
        gw = gw * ctx.w_mask if gw is not None else None
        return gx, gw, None, None, None, None, None, None


def _table_grads(ctx, grad, qx, qw, xs, xz, ws, wz):
    """Gradients from the low-rank factors of the table's smoothed differences."""
    op, tab, tg = ctx.op, ctx.tab, ctx.tab.table_grad
    shape = [-1] + [1] * (qw.dim() - 1)
    xi = code_index(qx, tab.a_scheme.bits)
    wi = code_index(qw, tab.b_scheme.bits)
    wsv, wzv = ws.reshape(shape), wz.reshape(shape).to(grad.dtype)
    gx = gw = None
    if ctx.needs_input_grad[0]:
        gx = -op.grad_input(ctx.x_shape, (wsv * wzv).expand(ctx.w_shape).contiguous(), grad)
        for r in range(tg.ua.shape[1]):
            back = op.grad_input(ctx.x_shape, wsv * tg.va[:, r][wi], grad)
            gx = gx + tg.ua[:, r][xi] * back
    if ctx.needs_input_grad[1]:
        pad_index = int(code_index(xz, tab.a_scheme.bits))
        xi_padded = op.pad(xi.to(torch.float32), float(pad_index)).long()
        ones = torch.ones_like(xi_padded, dtype=grad.dtype)
        gw = -float(xz) * op.grad_weight(ones, ctx.w_shape, grad, padded=True)
        for r in range(tg.ub.shape[1]):
            fwd = op.grad_weight(tg.ub[:, r][xi_padded], ctx.w_shape, grad, padded=True)
            gw = gw + tg.vb[:, r][wi] * fwd
        gw = gw * xs
    return gx, gw
