"""Integer matmul/conv with a product table: reference and faster exact backends, one dispatcher."""

from axdnn.kernels.affine import ActQuant, ZeroPoints
from axdnn.kernels.dispatch import (
    Backend,
    Problem,
    available_backends,
    choose_backend,
    list_backends,
    lut_conv2d,
    lut_conv2d_float,
    lut_linear,
    lut_linear_float,
    lut_matmul,
    register_backend,
)
from axdnn.kernels.geometry import ConvGeometry

__all__ = [
    "ActQuant",
    "Backend",
    "ConvGeometry",
    "Problem",
    "available_backends",
    "choose_backend",
    "list_backends",
    "lut_conv2d",
    "lut_conv2d_float",
    "lut_linear",
    "lut_linear_float",
    "lut_matmul",
    "register_backend",
    "ZeroPoints",
]
