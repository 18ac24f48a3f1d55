"""Integer matmul/conv with a product table: reference and faster exact backends, one dispatcher."""

from axdnn.kernels.dispatch import (
    Backend,
    Problem,
    choose_backend,
    list_backends,
    lut_conv2d,
    lut_linear,
    lut_matmul,
    register_backend,
)
from axdnn.kernels.geometry import ConvGeometry

__all__ = [
    "Backend",
    "ConvGeometry",
    "Problem",
    "choose_backend",
    "list_backends",
    "lut_conv2d",
    "lut_linear",
    "lut_matmul",
    "register_backend",
]
