"""The kernels as torch operators: `torch.library` custom ops with fake (meta) implementations.

`torch.compile` and `torch.export` cannot trace into a ctypes call or a Triton launch of a
backend; traced as `torch.ops.axdnn.*` operators they stay one opaque node whose output shape the
fake implementation gives, and which runs the dispatcher (`auto` or the forced backend) when the
compiled graph or exported program runs. The public `lut_*` functions of `axdnn.kernels` route
here by themselves while tracing (`tracing`), so callers change nothing; in eager mode they skip
the operator layer (no extra overhead). Operands travel flattened (schemas take no dataclasses);
the float operators take the activation zero point as a 0-dim tensor or an int (a traced layer
may hold it in a buffer, whose value is not known while tracing).
"""

from __future__ import annotations

import torch
from torch.library import custom_op, register_fake

from axdnn.kernels.affine import ActQuant, ZeroPoints
from axdnn.kernels.geometry import ConvGeometry


def tracing(x: torch.Tensor) -> bool:
    """Whether `x` is being traced (torch.compile, torch.export, fake tensors), so that kernel
    calls must go through the operators of this module."""
    from torch._subclasses.fake_tensor import is_fake

    return torch.compiler.is_compiling() or torch.compiler.is_exporting() or is_fake(x)


def _geom_list(geom: ConvGeometry) -> list[int]:
    return [*geom.kernel, *geom.stride, *geom.padding, *geom.dilation, geom.groups]


def _geom_of(g: list[int]) -> ConvGeometry:
    return ConvGeometry.of((g[0], g[1]), (g[2], g[3]), (g[4], g[5]), (g[6], g[7]), g[8])


def _zero_of(zx: int, zw, a_signed: bool, b_signed: bool, w_sums) -> ZeroPoints:
    return ZeroPoints(zx, zw, a_signed, b_signed, w_sums)


def _conv_shape(x: torch.Tensor, w: torch.Tensor, g: list[int]) -> tuple[int, ...]:
    ho, wo = _geom_of(g).output_size(x.shape[-2:])
    return (x.shape[0], w.shape[0], ho, wo)


@custom_op("axdnn::lut_conv2d_float", mutates_args=())
def _conv2d_float(
    x: torch.Tensor, act_scale: torch.Tensor, act_zero: torch.Tensor, qmin: int, qmax: int,
    bits: int, w_idx: torch.Tensor, table: torch.Tensor, geometry: list[int], zx: torch.Tensor,
    zw: torch.Tensor,
    a_signed: bool, b_signed: bool, w_sums: torch.Tensor | None, scale: torch.Tensor,
    acc_bits: int | None, backend: str,
) -> torch.Tensor:  # fmt: skip
    from axdnn.kernels import dispatch

    act = ActQuant(act_scale, int(act_zero), qmin, qmax, bits)
    zero = _zero_of(int(zx), zw, a_signed, b_signed, w_sums)
    return dispatch.lut_conv2d_float(
        x, act, w_idx, table, _geom_of(geometry), zero, scale, acc_bits, backend
    )


@register_fake("axdnn::lut_conv2d_float")
def _conv2d_float_fake(x, act_scale, act_zero, qmin, qmax, bits, w_idx, table, geometry, *rest):
    return x.new_empty(_conv_shape(x, w_idx, geometry), dtype=torch.float32)


@custom_op("axdnn::lut_linear_float", mutates_args=())
def _linear_float(
    x: torch.Tensor, act_scale: torch.Tensor, act_zero: torch.Tensor, qmin: int, qmax: int,
    bits: int, w_idx: torch.Tensor, table: torch.Tensor, zx: torch.Tensor, zw: torch.Tensor,
    a_signed: bool,
    b_signed: bool, w_sums: torch.Tensor | None, scale: torch.Tensor, acc_bits: int | None,
    backend: str,
) -> torch.Tensor:  # fmt: skip
    from axdnn.kernels import dispatch

    act = ActQuant(act_scale, int(act_zero), qmin, qmax, bits)
    zero = _zero_of(int(zx), zw, a_signed, b_signed, w_sums)
    return dispatch.lut_linear_float(x, act, w_idx, table, zero, scale, acc_bits, backend)


@register_fake("axdnn::lut_linear_float")
def _linear_float_fake(x, act_scale, act_zero, qmin, qmax, bits, w_idx, *rest):
    return x.new_empty((x.shape[0], w_idx.shape[0]), dtype=torch.float32)


@custom_op("axdnn::lut_conv2d", mutates_args=())
def _conv2d(
    x_idx: torch.Tensor, w_idx: torch.Tensor, table: torch.Tensor, geometry: list[int],
    pad_index: int | None, backend: str, has_zero: bool, zx: int, zw: torch.Tensor | None,
    a_signed: bool, b_signed: bool, w_sums: torch.Tensor | None,
) -> torch.Tensor:  # fmt: skip
    from axdnn.kernels import dispatch

    zero = _zero_of(zx, zw, a_signed, b_signed, w_sums) if has_zero else None
    return dispatch.lut_conv2d(x_idx, w_idx, table, _geom_of(geometry), pad_index, backend, zero)


@register_fake("axdnn::lut_conv2d")
def _conv2d_fake(x_idx, w_idx, table, geometry, *rest):
    return x_idx.new_empty(_conv_shape(x_idx, w_idx, geometry), dtype=torch.int64)


@custom_op("axdnn::lut_linear", mutates_args=())
def _linear(
    a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor, backend: str, has_zero: bool,
    zx: int, zw: torch.Tensor | None, a_signed: bool, b_signed: bool, w_sums: torch.Tensor | None,
) -> torch.Tensor:  # fmt: skip
    from axdnn.kernels import dispatch

    zero = _zero_of(zx, zw, a_signed, b_signed, w_sums) if has_zero else None
    return dispatch.lut_linear(a_idx, b_idx, table, backend, zero)


@register_fake("axdnn::lut_linear")
def _linear_fake(a_idx, b_idx, *rest):
    return a_idx.new_empty((a_idx.shape[0], b_idx.shape[0]), dtype=torch.int64)


@custom_op("axdnn::lut_matmul", mutates_args=())
def _matmul(
    a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor, backend: str
) -> torch.Tensor:
    from axdnn.kernels import dispatch

    return dispatch.lut_matmul(a_idx, b_idx, table, backend)


@register_fake("axdnn::lut_matmul")
def _matmul_fake(a_idx, b_idx, table, backend):
    batch = torch.broadcast_shapes(a_idx.shape[:-2], b_idx.shape[:-2])
    return a_idx.new_empty((*batch, a_idx.shape[-2], b_idx.shape[-1]), dtype=torch.int64)


def _zero_args(zero: ZeroPoints | None) -> tuple:
    """(has_zero, zx, zw, a_signed, b_signed, w_sums) of the raw operators."""
    if zero is None:
        return (False, 0, None, False, False, None)
    return (True, int(zero.x), zero.w, zero.a_signed, zero.b_signed, zero.w_sums)


def _float_zero_args(zero: ZeroPoints) -> tuple:
    """(zx as a 0-dim tensor, zw, a_signed, b_signed, w_sums) of the float operators."""
    return (_scalar(zero.x), zero.w, zero.a_signed, zero.b_signed, zero.w_sums)


def _scalar(v) -> torch.Tensor:
    return v if isinstance(v, torch.Tensor) else torch.tensor(int(v))


def _act_args(act: ActQuant) -> tuple:
    return (act.scale, _scalar(act.zero), int(act.qmin), int(act.qmax), int(act.bits))


def conv2d_float(x, act: ActQuant, w_idx, table, geom, zero: ZeroPoints, scale, acc_bits, backend):
    """`lut_conv2d_float` as the operator `torch.ops.axdnn.lut_conv2d_float`."""
    return _conv2d_float(
        x, *_act_args(act), w_idx, table, _geom_list(geom), *_float_zero_args(zero), scale,
        acc_bits, backend,
    )  # fmt: skip


def linear_float(x, act: ActQuant, w_idx, table, zero: ZeroPoints, scale, acc_bits, backend):
    """`lut_linear_float` as the operator `torch.ops.axdnn.lut_linear_float`."""
    return _linear_float(
        x, *_act_args(act), w_idx, table, *_float_zero_args(zero), scale, acc_bits, backend
    )


def conv2d(x_idx, w_idx, table, geom, pad_index, backend, zero):
    """`lut_conv2d` as the operator `torch.ops.axdnn.lut_conv2d`."""
    return _conv2d(x_idx, w_idx, table, _geom_list(geom), pad_index, backend, *_zero_args(zero))


def linear(a_idx, b_idx, table, backend, zero):
    """`lut_linear` as the operator `torch.ops.axdnn.lut_linear`."""
    return _linear(a_idx, b_idx, table, backend, *_zero_args(zero))


def matmul(a_idx, b_idx, table, backend):
    """`lut_matmul` as the operator `torch.ops.axdnn.lut_matmul`."""
    return _matmul(a_idx, b_idx, table, backend)
