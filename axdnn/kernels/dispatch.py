"""One entry point per operation; picks a backend (or uses the one forced) and runs it.

A backend is a small object with `name`, `conv2d`, `linear`, `matmul` and `supports(table, device)`;
`choose_backend` asks each registered backend, fastest first, whether it can run exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from axdnn.errors import ConfigError
from axdnn.kernels import reference
from axdnn.kernels.geometry import ConvGeometry


@dataclass(frozen=True)
class Backend:
    """A product-table kernel implementation; `priority` orders auto choice (higher first)."""

    name: str
    conv2d: Callable[..., torch.Tensor]
    linear: Callable[..., torch.Tensor]
    matmul: Callable[..., torch.Tensor]
    supports: Callable[[torch.Tensor, torch.device], bool]
    priority: int = 0


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> None:
    _BACKENDS[backend.name] = backend


def list_backends() -> list[str]:
    return ["auto", *sorted(_BACKENDS)]


def choose_backend(table: torch.Tensor, device: torch.device, backend: str = "auto") -> Backend:
    """The forced backend, or the highest-priority one that supports this table and device."""
    if backend != "auto":
        if backend not in _BACKENDS:
            raise ConfigError(
                f"unknown kernel backend {backend!r}; available: {', '.join(list_backends())}"
            )
        chosen = _BACKENDS[backend]
        if not chosen.supports(table, device):
            raise ConfigError(f"kernel backend {backend!r} cannot run on device {device}")
        return chosen
    for candidate in sorted(_BACKENDS.values(), key=lambda b: -b.priority):
        if candidate.supports(table, device):
            return candidate
    raise ConfigError(f"no kernel backend supports device {device}")


def lut_conv2d(x_idx, w_idx, table, geom: ConvGeometry, pad_index: int = 0, backend: str = "auto"):
    """Exact int64 sum of table products over each receptive field (see kernels.reference)."""
    chosen = choose_backend(table, x_idx.device, backend)
    return chosen.conv2d(x_idx, w_idx, table, geom, pad_index)


def lut_linear(a_idx, b_idx, table, backend: str = "auto"):
    """Exact int64 out[m, o] = sum_k table[a[m, k], b[o, k]]."""
    return choose_backend(table, a_idx.device, backend).linear(a_idx, b_idx, table)


def lut_matmul(a_idx, b_idx, table, backend: str = "auto"):
    """Exact int64 batched out[..., m, n] = sum_k table[a[..., m, k], b[..., k, n]]."""
    return choose_backend(table, a_idx.device, backend).matmul(a_idx, b_idx, table)


register_backend(
    Backend(
        name="reference",
        conv2d=reference.conv2d,
        linear=reference.linear,
        matmul=reference.matmul,
        supports=lambda table, device: True,
        priority=0,
    )
)
