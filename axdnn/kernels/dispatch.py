"""One entry point per operation: picks the fastest exact backend (or the one forced), runs it.

A backend is a small record with `name`, `conv2d`, `linear`, `matmul`, `supports(table, device)` and
an optional `cost(table, problem)`: estimated seconds for this table and shape, or None when it
cannot run them exactly. `choose_backend` takes the cheapest estimate among the backends that
support the table and device (ties and cost-less backends by `priority`).

Backends: `lowrank` (exact integer decomposition, float32 convs/matmuls; any device), `numba`
(compiled slab gather, CPU), `torch` (slab gather in torch ops; any device, the CUDA path for
general tables) and `reference`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from axdnn.errors import ConfigError, ShapeError
from axdnn.kernels import gather_cpu, gather_torch, lowrank, reference
from axdnn.kernels.factor import factorize
from axdnn.kernels.geometry import ConvGeometry


@dataclass(frozen=True)
class Problem:
    """What the dispatcher needs to know about one call: sizes, not data."""

    op: str  # "conv2d" or "matmul"
    device: torch.device
    macs: int  # table lookups in total
    channels: int  # input channels per group (conv) or reduction length (matmul)
    area: int  # kernel area (1 for matmul)
    inputs: int  # activation elements
    outputs: int  # output elements
    out_block: int = 64  # output channels per group (conv) or output columns (matmul)


@dataclass(frozen=True)
class Backend:
    """A product-table kernel implementation; `cost` (seconds, None = cannot) drives auto choice."""

    name: str
    conv2d: Callable[..., torch.Tensor]
    linear: Callable[..., torch.Tensor]
    matmul: Callable[..., torch.Tensor]
    supports: Callable[[torch.Tensor, torch.device], bool]
    priority: int = 0
    cost: Callable[[torch.Tensor, Problem], float | None] | None = None


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> None:
    """Add (or replace) a backend under its name."""
    _BACKENDS[backend.name] = backend


def list_backends() -> list[str]:
    """Names accepted by every `backend=` argument."""
    return ["auto", *sorted(_BACKENDS)]


def choose_backend(
    table: torch.Tensor,
    device: torch.device,
    backend: str = "auto",
    problem: Problem | None = None,
) -> Backend:
    """The forced backend, or the cheapest (by `cost` for `problem`) that supports this table."""
    if backend != "auto":
        if backend not in _BACKENDS:
            raise ConfigError(
                f"unknown kernel backend {backend!r}; available: {', '.join(list_backends())}"
            )
        chosen = _BACKENDS[backend]
        if not chosen.supports(table, device):
            raise ConfigError(
                f"kernel backend {backend!r} cannot run a {tuple(table.shape)} table on device "
                f"{device}; available: {', '.join(list_backends())}"
            )
        return chosen
    candidates = [b for b in _BACKENDS.values() if b.supports(table, device)]
    if not candidates:
        raise ConfigError(f"no kernel backend supports device {device}")
    best, best_key = None, None
    for candidate in candidates:
        est = None
        if problem is not None and candidate.cost is not None:
            est = candidate.cost(table, problem)
            if est is None:
                continue
        key = (est if est is not None else float("inf"), -candidate.priority)
        if best_key is None or key < best_key:
            best, best_key = candidate, key
    return best if best is not None else max(candidates, key=lambda b: b.priority)


def _check(name: str, idx: torch.Tensor, size: int, where: str) -> None:
    """Indices must be integers in 0..size-1 (table rows or columns)."""
    if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise ShapeError(f"{where}: {name} must be an integer index tensor, got {idx.dtype}")
    if not idx.numel() or (idx.dtype == torch.uint8 and size >= 256):
        return  # uint8 indices always fit a table of 256 or more rows/columns
    lo, hi = (int(v) for v in torch.aminmax(idx))
    if lo < 0 or hi >= size:
        raise ShapeError(
            f"{where}: {name} holds indices {lo}..{hi} but the table "
            f"accepts 0..{size - 1} (operand bit patterns, see axdnn.arith.Multiplier)"
        )


def _check_table(table: torch.Tensor, where: str) -> None:
    if table.dim() != 2 or table.dtype.is_floating_point:
        raise ShapeError(
            f"{where}: table must be a 2-D integer tensor (2^n x 2^m), got "
            f"{tuple(table.shape)} {table.dtype}"
        )


def lut_conv2d(
    x_idx: torch.Tensor,
    w_idx: torch.Tensor,
    table: torch.Tensor,
    geom: ConvGeometry,
    pad_index: int = 0,
    backend: str = "auto",
) -> torch.Tensor:
    """Exact int64 sum of table products over each receptive field (see kernels.reference)."""
    where = "lut_conv2d"
    _check_table(table, where)
    if x_idx.dim() != 4 or w_idx.dim() != 4:
        raise ShapeError(
            f"{where}: expected x (N, C, H, W) and w (O, C/groups, kh, kw), got "
            f"{tuple(x_idx.shape)} and {tuple(w_idx.shape)}"
        )
    n, c, h, w = x_idx.shape
    o, cg, kh, kw = w_idx.shape
    g = geom.groups
    if (kh, kw) != geom.kernel or c != cg * g or o % g:
        raise ShapeError(
            f"{where}: weights {tuple(w_idx.shape)} do not fit input channels {c}, groups {g} "
            f"and kernel {geom.kernel}"
        )
    ho, wo = geom.output_size((h, w))
    if ho <= 0 or wo <= 0:
        raise ShapeError(f"{where}: input {h}x{w} is smaller than the kernel's extent")
    _check("x_idx", x_idx, table.shape[0], where)
    _check("w_idx", w_idx, table.shape[1], where)
    if not 0 <= int(pad_index) < table.shape[0]:
        raise ShapeError(f"{where}: pad_index {pad_index} is outside 0..{table.shape[0] - 1}")
    problem = Problem(
        "conv2d",
        x_idx.device,
        n * o * ho * wo * cg * kh * kw,
        cg,
        kh * kw,
        x_idx.numel(),
        n * o * ho * wo,
        o // g,
    )
    chosen = choose_backend(table, x_idx.device, backend, problem)
    return chosen.conv2d(x_idx, w_idx, table.to(x_idx.device), geom, int(pad_index))


def _matmul_problem(a: torch.Tensor, b_shape: tuple[int, ...], outputs: int, k: int) -> Problem:
    return Problem(
        "matmul", a.device, outputs * k, k, 1, a.numel(), outputs, min(b_shape[-1], a.shape[-2])
    )


def lut_linear(
    a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor, backend: str = "auto"
) -> torch.Tensor:
    """Exact int64 out[m, o] = sum_k table[a[m, k], b[o, k]]."""
    where = "lut_linear"
    _check_table(table, where)
    if a_idx.dim() != 2 or b_idx.dim() != 2 or a_idx.shape[1] != b_idx.shape[1]:
        raise ShapeError(
            f"{where}: expected a (M, K) and b (O, K), got {tuple(a_idx.shape)} "
            f"and {tuple(b_idx.shape)}"
        )
    _check("a_idx", a_idx, table.shape[0], where)
    _check("b_idx", b_idx, table.shape[1], where)
    problem = _matmul_problem(
        a_idx, tuple(b_idx.shape), a_idx.shape[0] * b_idx.shape[0], a_idx.shape[1]
    )
    chosen = choose_backend(table, a_idx.device, backend, problem)
    return chosen.linear(a_idx, b_idx, table.to(a_idx.device))


def lut_matmul(
    a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor, backend: str = "auto"
) -> torch.Tensor:
    """Exact int64 batched out[..., m, n] = sum_k table[a[..., m, k], b[..., k, n]]."""
    where = "lut_matmul"
    _check_table(table, where)
    if a_idx.dim() < 2 or b_idx.dim() < 2 or a_idx.shape[-1] != b_idx.shape[-2]:
        raise ShapeError(
            f"{where}: expected a (..., M, K) and b (..., K, N), got "
            f"{tuple(a_idx.shape)} and {tuple(b_idx.shape)}"
        )
    try:
        batch = torch.broadcast_shapes(a_idx.shape[:-2], b_idx.shape[:-2])
    except RuntimeError as exc:
        raise ShapeError(
            f"{where}: batch dims of {tuple(a_idx.shape)} and {tuple(b_idx.shape)} do not broadcast"
        ) from exc
    _check("a_idx", a_idx, table.shape[0], where)
    _check("b_idx", b_idx, table.shape[1], where)
    outputs = a_idx.shape[-2] * b_idx.shape[-1] * max(1, torch.Size(batch).numel())
    problem = _matmul_problem(a_idx, tuple(b_idx.shape), outputs, a_idx.shape[-1])
    chosen = choose_backend(table, a_idx.device, backend, problem)
    return chosen.matmul(a_idx, b_idx, table.to(a_idx.device))


# Throughput figures (per second and thread) behind the cost estimates, measured with
# benchmarks/lut_kernels.py --threads 1 on the 2-core AVX2 EPYC (float32 conv: 21-40 G MAC/s;
# numba slab gather: 2.7 G lookups/s with 16 output channels per lookup row, 6 G/s with 64) and
# scaled for CUDA; only their ratios matter, and all backends scale alike with threads.
_F32_MACS = {"cpu": 3e10, "cuda": 2e13}
_ELEMENTS = {"cpu": 3e8, "cuda": 3e11}
# numba gather: seconds per lookup = _SLAB_ROW / (output channels per row, <= 64) + _SLAB_ADD,
# plus building the slab (table rows x output channels x reduction) at _SLAB_BUILD entries/s.
_SLAB_ROW = 4.3e-9
_SLAB_ADD = 1.0e-10
_SLAB_BUILD = 4e8
_TORCH_LOOKUPS = {"cpu": 2e8, "cuda": 1e11}
_REFERENCE_LOOKUPS = {"cpu": 5e7, "cuda": 1e10}


def _kind(device: torch.device) -> str:
    return "cuda" if device.type == "cuda" else "cpu"


def _lowrank_cost(table: torch.Tensor, p: Problem) -> float | None:
    calls = lowrank.call_count(table, p.channels, p.area)
    if calls is None:
        return None
    kind = _kind(p.device)
    return calls * p.macs / _F32_MACS[kind] + (calls * p.inputs + 3 * p.outputs) / _ELEMENTS[kind]


def _numba_cost(table: torch.Tensor, p: Problem) -> float:
    block = max(1, min(p.out_block, gather_cpu.MAX_OUT_BLOCK))
    slab = table.shape[0] * p.out_block * p.channels * p.area  # per group (a lower bound)
    return (
        p.macs * (_SLAB_ROW / block + _SLAB_ADD)
        + slab / _SLAB_BUILD
        + 2 * p.outputs / _ELEMENTS["cpu"]
    )


def _torch_cost(table: torch.Tensor, p: Problem) -> float:
    return p.macs / _TORCH_LOOKUPS[_kind(p.device)]


def _reference_cost(table: torch.Tensor, p: Problem) -> float:
    return p.macs / _REFERENCE_LOOKUPS[_kind(p.device)]


register_backend(
    Backend(
        name="reference",
        conv2d=reference.conv2d,
        linear=reference.linear,
        matmul=reference.matmul,
        supports=lambda table, device: True,
        priority=0,
        cost=_reference_cost,
    )
)
register_backend(
    Backend(
        name="torch",
        conv2d=gather_torch.conv2d,
        linear=gather_torch.linear,
        matmul=gather_torch.matmul,
        supports=lambda table, device: True,
        priority=1,
        cost=_torch_cost,
    )
)
register_backend(
    Backend(
        name="numba",
        conv2d=gather_cpu.conv2d,
        linear=gather_cpu.linear,
        matmul=gather_cpu.matmul,
        supports=lambda table, device: device.type == "cpu" and gather_cpu.available(),
        priority=2,
        cost=_numba_cost,
    )
)
register_backend(
    Backend(
        name="lowrank",
        conv2d=lowrank.conv2d,
        linear=lowrank.linear,
        matmul=lowrank.matmul,
        supports=lambda table, device: bool(factorize(table)),
        priority=3,
        cost=_lowrank_cost,
    )
)
