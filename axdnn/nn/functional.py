"""The integer MAC with a product table, as an autograd function shared by every approximate layer.

Forward (exact integers, DESIGN.md): with codes q_x, q_w, zero points z_x, z_w and table M,

    acc = sum_k M[q_x, q_w] - z_w * sum_k (q_x - z_x) - z_x * sum_k q_w
    y   = s_x * s_w * acc

which with the exact table equals s_x * s_w * sum_k (q_x - z_x)(q_w - z_w), i.e. ordinary integer
quantized inference, bit for bit. Padding feeds the code z_x (real zero) into the multiplier.
Backward: straight-through (exact product of the dequantized operands) or the table-difference
gradient (see `axdnn.nn.gradients`); inputs outside the quantization range get no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.nn import grad as nn_grad

from axdnn.kernels import ConvGeometry, lut_conv2d, lut_linear
from axdnn.nn.gradients import TableGradient
from axdnn.nn.quant import QuantScheme, code_index, quantize_codes

FLOAT32_EXACT = 1 << 24


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

    def lut(self, xi, wi, tab: TableOperands, pad_index: int) -> torch.Tensor:
        return lut_conv2d(xi, wi, tab.table, self.geom, pad_index, backend=tab.backend)

    def sum_x(self, x_centered: torch.Tensor, out_channels: int, code_span: int) -> torch.Tensor:
        """Sum of centred activation codes over each output's receptive field (exact); float32
        when `code_span` (the largest |centred code|) times the field size stays below 2^24."""
        g = self.geom
        cin_g = x_centered.shape[1] // g.groups
        ones = x_centered.new_ones(g.groups, cin_g, *g.kernel)
        bound = code_span * ones[0].numel()
        dtype = torch.float32 if bound < FLOAT32_EXACT else torch.float64
        sums = F.conv2d(
            x_centered.to(dtype), ones.to(dtype), None, g.stride, g.padding, g.dilation, g.groups
        )
        return sums.round().long().repeat_interleave(out_channels // g.groups, dim=1)

    def sum_w(self, qw: torch.Tensor) -> torch.Tensor:
        return self.channel(qw.sum(dim=(1, 2, 3)))

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

    def lut(self, xi, wi, tab: TableOperands, pad_index: int) -> torch.Tensor:
        return lut_linear(xi, wi, tab.table, backend=tab.backend)

    def sum_x(self, x_centered: torch.Tensor, out_channels: int, code_span: int) -> torch.Tensor:
        return x_centered.sum(dim=1, keepdim=True).long()

    def sum_w(self, qw: torch.Tensor) -> torch.Tensor:
        return self.channel(qw.sum(dim=1))

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


def _saturate(acc: torch.Tensor, bits: int | None) -> torch.Tensor:
    if bits is None:
        return acc
    bound = 1 << (bits - 1)
    return acc.clamp(-bound, bound - 1)


def _in_range(x, scale, zero, scheme: QuantScheme) -> torch.Tensor:
    qmin = -scheme.qmax if scheme.symmetric and scheme.signed else scheme.qmin
    t = x / scale + zero
    return (t >= qmin - 0.5) & (t <= scheme.qmax + 0.5)


class TableMac(torch.autograd.Function):
    """y = s_x * s_w * (table MAC with exact zero-point corrections); see the module docstring.

    `track=False` (the caller runs without autograd) skips what only backward needs."""

    @staticmethod
    def forward(ctx, x, w, op, tab: TableOperands, xs, xz, ws, wz, track: bool = True):
        wsv, wzv = ws.reshape(-1, *[1] * (w.dim() - 1)), wz.reshape(-1, *[1] * (w.dim() - 1))
        qx = quantize_codes(x, xs, xz, tab.a_scheme)
        qw = quantize_codes(w, wsv, wzv, tab.b_scheme)
        zx = int(xz)
        a, b = tab.a_scheme, tab.b_scheme
        pad_index = int(code_index(torch.tensor(zx), a.bits))
        acc = op.lut(
            _narrow(code_index(qx, a.bits), a.bits),
            _narrow(code_index(qw, b.bits), b.bits),
            tab,
            pad_index,
        )
        span = max(abs(a.qmax - zx), abs(zx - min(a.qmin, -a.qmax)))
        acc = acc - op.channel(wz) * op.sum_x(qx - zx, w.shape[0], span) - zx * op.sum_w(qw)
        acc = _saturate(acc, tab.acc_bits)
        y = acc.to(torch.float32) * op.channel(xs * ws)
        if track:
            ctx.op, ctx.tab, ctx.x_shape, ctx.w_shape = op, tab, x.shape, w.shape
            ctx.x_mask = _in_range(x, xs, xz, a) if ctx.needs_input_grad[0] else None
            ctx.w_mask = _in_range(w, wsv, wzv, b) if ctx.needs_input_grad[1] else None
            ctx.save_for_backward(qx.to(torch.int16), qw.to(torch.int16), xs, xz, ws, wz)
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
        return gx, gw, None, None, None, None, None, None, None


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
