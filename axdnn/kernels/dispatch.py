"""One entry point per operation: picks the fastest exact backend (or the one forced), runs it.

A backend is a small record with `name`, `conv2d`, `linear`, `matmul`, `supports(table, device)` and
an optional `cost(table, problem)`: estimated seconds for this table and shape, or None when it
cannot run them exactly. `choose_backend` takes the cheapest estimate among the backends that
support the table and device (ties and cost-less backends by `priority`).

Operations: raw table sums (`lut_conv2d`, `lut_linear`, `lut_matmul`), the same with zero points
(`zero=`, the integer MAC of `axdnn.kernels.affine`), and the layer chain float input -> codes ->
MAC -> float output (`lut_conv2d_float`, `lut_linear_float`). A backend that does not compute zero
points or the float chain itself gets them composed from its raw sums, exactly.

Backends: `native` (compiled C register-tile gather, CPU; fuses the whole float chain), `lowrank`
(exact integer decomposition, float32 convs/matmuls; any device), `numba` (compiled slab gather,
CPU), `triton` (tiled GPU kernel; fuses the float chain; the CUDA path for general tables where
triton is installed), `torch` (slab gather in torch ops; any device) and `reference`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from axdnn.errors import ConfigError, ShapeError
from axdnn.kernels import affine, gather_cpu, gather_torch, lowrank, native, ops, reference
from axdnn.kernels import triton_kernels as triton_backend
from axdnn.kernels.affine import ActQuant, ZeroPoints
from axdnn.kernels.factor import factorize, table_digest
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
    groups: int = 1
    fused: bool = False  # the float chain (quantize, MAC, dequantize), not raw sums


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
    zero_points: bool = False  # conv2d/linear take `zero=` and compute the zero-point MAC
    conv2d_float: Callable[..., torch.Tensor] | None = None
    linear_float: Callable[..., torch.Tensor] | None = None
    fuses: Callable[[torch.device], bool] | None = None  # where conv2d_float runs (None: always)
    missing: Callable[[], str | None] | None = None  # why it is not installed here (None: it is)

    def why_missing(self) -> str | None:
        """What keeps this backend from running on this installation (None when nothing)."""
        return self.missing() if self.missing is not None else None

    def runs(self, table: torch.Tensor, device: torch.device) -> bool:
        """Installed, and able to run `table` on `device`."""
        return self.why_missing() is None and self.supports(table, device)

    def fused_conv(self, device: torch.device) -> bool:
        """Whether this backend runs the float chain of a convolution itself on `device`."""
        return self.conv2d_float is not None and (self.fuses is None or self.fuses(device))


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> None:
    """Add (or replace) a backend under its name."""
    _BACKENDS[backend.name] = backend


def list_backends() -> list[str]:
    """Names accepted by every `backend=` argument."""
    return ["auto", *sorted(_BACKENDS)]


def available_backends(
    table: torch.Tensor | None = None, device: torch.device | None = None
) -> list[str]:
    """Backends installed here ("auto" first); given a table and device, only those that can
    run it: exactly what `auto` chooses from and what errors offer."""
    names = [
        name
        for name, b in sorted(_BACKENDS.items())
        if (b.runs(table, device) if table is not None else b.why_missing() is None)
    ]
    return ["auto", *names]


def _forced(backend: str, table: torch.Tensor, device: torch.device) -> Backend:
    if backend not in _BACKENDS:
        raise ConfigError(
            f"unknown kernel backend {backend!r}; known: {', '.join(list_backends())}; "
            f"installed here: {', '.join(available_backends())}"
        )
    chosen = _BACKENDS[backend]
    reason = chosen.why_missing()
    if reason is not None:
        raise ConfigError(
            f"kernel backend {backend!r} is not installed: {reason}; available here for this "
            f"table and device: {', '.join(available_backends(table, device))}"
        )
    if not chosen.supports(table, device):
        raise ConfigError(
            f"kernel backend {backend!r} cannot run a {tuple(table.shape)} table on device "
            f"{device}; backends that can: {', '.join(available_backends(table, device))}"
        )
    return chosen


def choose_backend(
    table: torch.Tensor,
    device: torch.device,
    backend: str = "auto",
    problem: Problem | None = None,
) -> Backend:
    """The forced backend, or the cheapest (by `cost` for `problem`) that supports this table."""
    if backend != "auto":
        return _forced(backend, table, device)
    installed = tuple(name for name, b in _BACKENDS.items() if b.why_missing() is None)
    key = (table_digest(table), device, problem, installed)
    chosen = _CHOICES.get(key)
    if chosen is None or _BACKENDS.get(chosen.name) is not chosen:
        chosen = _cheapest(table, device, problem)
        _CHOICES[key] = chosen
        while len(_CHOICES) > 4096:
            _CHOICES.popitem(last=False)
    return chosen


# auto's choices by (table, device, problem, installed backends): a layer asks the same
# question on every call
_CHOICES: OrderedDict[tuple, Backend] = OrderedDict()


def _cheapest(table: torch.Tensor, device: torch.device, problem: Problem | None) -> Backend:
    candidates = [_BACKENDS[name] for name in available_backends(table, device)[1:]]
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


def _check_zero(zero: ZeroPoints, outputs: int, where: str) -> None:
    if zero.w.dim() != 1 or zero.w.numel() != outputs:
        raise ShapeError(
            f"{where}: zero.w must hold one weight zero point per output channel ({outputs}), "
            f"got shape {tuple(zero.w.shape)}"
        )


def _pad(table: torch.Tensor, pad_index: int | None, zero: ZeroPoints | None, where: str) -> int:
    """The padding row: given, or the activation zero point's index (padding feeds real zero)."""
    if zero is not None:
        implied = affine.pad_index(zero, table.shape[0])
        if pad_index is not None and int(pad_index) != implied:
            raise ShapeError(
                f"{where}: pad_index {pad_index} contradicts the activation zero point "
                f"{zero.x} (index {implied}); leave pad_index out when giving zero points"
            )
        return implied
    pad = 0 if pad_index is None else int(pad_index)
    if not 0 <= pad < table.shape[0]:
        raise ShapeError(f"{where}: pad_index {pad} is outside 0..{table.shape[0] - 1}")
    return pad


def conv_problem(x_shape, w_shape, geom: ConvGeometry, device, fused: bool = False) -> Problem:
    """What the dispatcher prices for a table convolution of these shapes (`fused`: the whole
    float chain of a layer, not raw sums)."""
    n, _, h, w = x_shape
    o, cg, kh, kw = w_shape
    ho, wo = geom.output_size((h, w))
    g = geom.groups
    return Problem(
        "conv2d", device, n * o * ho * wo * cg * kh * kw, cg, kh * kw, n * cg * g * h * w,
        n * o * ho * wo, o // g, g, fused,
    )  # fmt: skip


def _conv_shapes(x_shape, w_idx: torch.Tensor, geom: ConvGeometry, where: str) -> None:
    if len(x_shape) != 4 or w_idx.dim() != 4:
        raise ShapeError(
            f"{where}: expected x (N, C, H, W) and w (O, C/groups, kh, kw), got "
            f"{tuple(x_shape)} and {tuple(w_idx.shape)}"
        )
    _, c, h, w = x_shape
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


def _conv_raw(chosen: Backend, x_idx, w_idx, table, geom, pad: int, zero) -> torch.Tensor:
    """Raw sums or the zero-point MAC on `chosen`, composed from raw sums where it lacks it;
    always in the standard contiguous layout (a backend's strides must not reach later float
    ops, whose summation order, and so rounding, depends on them)."""
    table = table.to(x_idx.device)
    if zero is None:
        return chosen.conv2d(x_idx, w_idx, table, geom, pad).contiguous()
    if chosen.zero_points:
        return chosen.conv2d(x_idx, w_idx, table, geom, pad, zero=zero).contiguous()
    raw = chosen.conv2d(x_idx, w_idx, table, geom, pad)
    return (raw + affine.conv_correction(x_idx, w_idx, tuple(table.shape), geom, zero)).contiguous()


def lut_conv2d(
    x_idx: torch.Tensor,
    w_idx: torch.Tensor,
    table: torch.Tensor,
    geom: ConvGeometry,
    pad_index: int | None = None,
    backend: str = "auto",
    zero: ZeroPoints | None = None,
) -> torch.Tensor:
    """Exact int64 sum of table products over each receptive field (see kernels.reference);
    with `zero`, the zero-point MAC of `axdnn.kernels.affine` (padding reads the zero point)."""
    if ops.tracing(x_idx):
        return ops.conv2d(x_idx, w_idx, table, geom, pad_index, backend, zero)
    where = "lut_conv2d"
    _check_table(table, where)
    _conv_shapes(x_idx.shape, w_idx, geom, where)
    _check("x_idx", x_idx, table.shape[0], where)
    _check("w_idx", w_idx, table.shape[1], where)
    if zero is not None:
        _check_zero(zero, w_idx.shape[0], where)
    pad = _pad(table, pad_index, zero, where)
    problem = conv_problem(x_idx.shape, w_idx.shape, geom, x_idx.device)
    chosen = choose_backend(table, x_idx.device, backend, problem)
    return _conv_raw(chosen, x_idx, w_idx, table, geom, pad, zero)


def _check_float(x, act: ActQuant, table, zero, scale, outputs: int, where: str) -> None:
    if not x.dtype.is_floating_point:
        raise ShapeError(f"{where}: x must be a float tensor, got {x.dtype}")
    if table.shape[0] != 1 << act.bits:
        raise ShapeError(
            f"{where}: {act.bits}-bit activation codes do not index a table of "
            f"{table.shape[0]} rows"
        )
    _check_zero(zero, outputs, where)
    if scale.numel() != outputs:
        raise ShapeError(f"{where}: scale needs {outputs} values (one per output channel)")


def _codes(x: torch.Tensor, act: ActQuant) -> torch.Tensor:
    codes = affine.quantize(x, act.scale, act.zero, act.qmin, act.qmax)
    index = affine.index_of(codes, act.bits)
    return index.to(torch.uint8) if act.bits <= 8 else index


def lut_conv2d_float(
    x: torch.Tensor,
    act: ActQuant,
    w_idx: torch.Tensor,
    table: torch.Tensor,
    geom: ConvGeometry,
    zero: ZeroPoints,
    scale: torch.Tensor,
    acc_bits: int | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """A table convolution layer's arithmetic: float32(saturate(MAC(quantize(x)))) * scale[o].

    Bit-identical to quantizing with `act`, `lut_conv2d(..., zero=zero)`, `affine.saturate` and
    `affine.dequantize`, which is how backends without a fused version run it."""
    if ops.tracing(x):
        return ops.conv2d_float(x, act, w_idx, table, geom, zero, scale, acc_bits, backend)
    where = "lut_conv2d_float"
    _check_table(table, where)
    _conv_shapes(x.shape, w_idx, geom, where)
    _check("w_idx", w_idx, table.shape[1], where)
    _check_float(x, act, table, zero, scale, w_idx.shape[0], where)
    problem = conv_problem(x.shape, w_idx.shape, geom, x.device, fused=True)
    chosen = choose_backend(table, x.device, backend, problem)
    if chosen.fused_conv(x.device):
        return chosen.conv2d_float(x, act, w_idx, table, geom, zero, scale, acc_bits).contiguous()
    pad = affine.pad_index(zero, table.shape[0])
    acc = _conv_raw(chosen, _codes(x, act), w_idx, table, geom, pad, zero)
    return affine.dequantize(affine.saturate(acc, acc_bits), scale.to(acc.device), 1)


def _matmul_problem(a: torch.Tensor, columns: int, outputs: int, k: int, fused=False) -> Problem:
    """A (batched) matmul with `columns` output columns per row (out_block)."""
    return Problem("matmul", a.device, outputs * k, k, 1, a.numel(), outputs, columns, 1, fused)


def _linear_raw(chosen: Backend, a_idx, b_idx, table, zero) -> torch.Tensor:
    table = table.to(a_idx.device)
    if zero is None:
        return chosen.linear(a_idx, b_idx, table).contiguous()
    if chosen.zero_points:
        return chosen.linear(a_idx, b_idx, table, zero=zero).contiguous()
    raw = chosen.linear(a_idx, b_idx, table)
    return (raw + affine.linear_correction(a_idx, b_idx, tuple(table.shape), zero)).contiguous()


def _linear_shapes(a_shape, b_idx: torch.Tensor, where: str) -> None:
    if len(a_shape) != 2 or b_idx.dim() != 2 or a_shape[1] != b_idx.shape[1]:
        raise ShapeError(
            f"{where}: expected a (M, K) and b (O, K), got {tuple(a_shape)} "
            f"and {tuple(b_idx.shape)}"
        )


def lut_linear(
    a_idx: torch.Tensor,
    b_idx: torch.Tensor,
    table: torch.Tensor,
    backend: str = "auto",
    zero: ZeroPoints | None = None,
) -> torch.Tensor:
    """Exact int64 out[m, o] = sum_k table[a[m, k], b[o, k]]; with `zero`, the zero-point MAC."""
    if ops.tracing(a_idx):
        return ops.linear(a_idx, b_idx, table, backend, zero)
    where = "lut_linear"
    _check_table(table, where)
    _linear_shapes(a_idx.shape, b_idx, where)
    _check("a_idx", a_idx, table.shape[0], where)
    _check("b_idx", b_idx, table.shape[1], where)
    if zero is not None:
        _check_zero(zero, b_idx.shape[0], where)
    problem = _matmul_problem(
        a_idx, b_idx.shape[0], a_idx.shape[0] * b_idx.shape[0], a_idx.shape[1]
    )
    chosen = choose_backend(table, a_idx.device, backend, problem)
    return _linear_raw(chosen, a_idx, b_idx, table, zero)


def lut_linear_float(
    x: torch.Tensor,
    act: ActQuant,
    w_idx: torch.Tensor,
    table: torch.Tensor,
    zero: ZeroPoints,
    scale: torch.Tensor,
    acc_bits: int | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """A table linear layer's arithmetic on x (M, K); see `lut_conv2d_float`."""
    if ops.tracing(x):
        return ops.linear_float(x, act, w_idx, table, zero, scale, acc_bits, backend)
    where = "lut_linear_float"
    _check_table(table, where)
    _linear_shapes(x.shape, w_idx, where)
    _check("w_idx", w_idx, table.shape[1], where)
    _check_float(x, act, table, zero, scale, w_idx.shape[0], where)
    outputs = x.shape[0] * w_idx.shape[0]
    problem = _matmul_problem(x, w_idx.shape[0], outputs, x.shape[1], fused=True)
    chosen = choose_backend(table, x.device, backend, problem)
    if chosen.linear_float is not None:
        return chosen.linear_float(x, act, w_idx, table, zero, scale, acc_bits).contiguous()
    acc = _linear_raw(chosen, _codes(x, act), w_idx, table, zero)
    return affine.dequantize(affine.saturate(acc, acc_bits), scale.to(acc.device), 1)


def lut_matmul(
    a_idx: torch.Tensor, b_idx: torch.Tensor, table: torch.Tensor, backend: str = "auto"
) -> torch.Tensor:
    """Exact int64 batched out[..., m, n] = sum_k table[a[..., m, k], b[..., k, n]]."""
    if ops.tracing(a_idx):
        return ops.matmul(a_idx, b_idx, table, backend)
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
    problem = _matmul_problem(a_idx, b_idx.shape[-1], outputs, a_idx.shape[-1])
    chosen = choose_backend(table, a_idx.device, backend, problem)
    return chosen.matmul(a_idx, b_idx, table.to(a_idx.device)).contiguous()


# Throughput figures (per second and thread) behind the cost estimates, measured with
# benchmarks/lut_kernels.py --threads 1 on the 2-core AVX-512 EPYC (float32 conv 40-100 G MAC/s,
# about half that below 32 channels; numba slab gather 2.7-6 G lookups/s; native: see
# axdnn.kernels.native) and scaled for CUDA; only their ratios matter, and all backends scale
# alike with threads.
_F32_MACS = {"cpu": 8e10, "cuda": 2e13}
_F32_FULL_WIDTH = 32  # channels from which float32 convolutions run at _F32_MACS
_ELEMENTS = {"cpu": 1e9, "cuda": 3e11}
# the low-rank fused layer path (quantize, lookup + pad, zero-point sums, output pass):
# seconds per input and per output element
_LOWRANK_FUSED = (2e-9, 5e-10)
# element passes of the float chain composed in torch ops (quantize; corrections, saturate,
# dequantize) per input and per output element, at _TORCH_ELEMENTS per second (int64 tensors)
_COMPOSED_PASSES = (5, 8)
_TORCH_ELEMENTS = {"cpu": 3e8, "cuda": 3e11}
# numba gather: seconds per lookup = _SLAB_ROW / (output channels per row, <= 64) + _SLAB_ADD,
# plus building the slab (table rows x output channels x reduction) at _SLAB_BUILD entries/s.
_SLAB_ROW = 4.3e-9
_SLAB_ADD = 1.0e-10
_SLAB_BUILD = 4e8
_TORCH_LOOKUPS = {"cpu": 2e8, "cuda": 1e11}
_REFERENCE_LOOKUPS = {"cpu": 5e7, "cuda": 1e10}
# Triton MAC kernel, table lookups per second on a GPU: an estimate (no GPU was available to
# measure it), set between the torch gathers and float32 so that `auto` picks it for general
# tables and still prefers lowrank's float convolutions for rank-1 ones.
_TRITON_LOOKUPS = 1e12
# Fixed seconds per CPU call (Python, ctypes, allocations; measured on a layer of a few
# pixels): what decides batch-1 and other small problems.
_CALL_SECONDS = {"native": 2.5e-5, "lowrank": 2e-4, "torch": 1e-4, "reference": 1e-4}


def _kind(device: torch.device) -> str:
    return "cuda" if device.type == "cuda" else "cpu"


def _per_call(backend: str, p: Problem) -> float:
    """The fixed cost of one call of `backend` (CPU; on a GPU launches overlap)."""
    return _CALL_SECONDS[backend] if _kind(p.device) == "cpu" else 0.0


def _composed(p: Problem) -> float:
    """What composing the float chain around raw sums costs (0 for raw problems)."""
    if not p.fused:
        return 0.0
    per_in, per_out = _COMPOSED_PASSES
    return (per_in * p.inputs + per_out * p.outputs) / _TORCH_ELEMENTS[_kind(p.device)]


def _lowrank_cost(table: torch.Tensor, p: Problem) -> float | None:
    calls = lowrank.call_count(table, p.channels, p.area)
    if calls is None:
        return None
    kind = _kind(p.device)
    width = min(1.0, min(p.channels, p.out_block) / _F32_FULL_WIDTH)
    work = calls * p.macs / (_F32_MACS[kind] * width)
    overhead = _per_call("lowrank", p) * len(lowrank.plan_for(table, p.channels, p.area).chunks)
    if p.fused and p.op == "conv2d" and lowrank.fuses(p.device):
        units = lowrank.conv_units(table, p.channels, p.area)
        per_in, per_out = _LOWRANK_FUSED
        return (
            units * p.macs / (_F32_MACS[kind] * width)
            + p.inputs * per_in * max(1.0, units)
            + p.outputs * per_out
            + overhead
        )
    passes = (calls * p.inputs + 3 * p.outputs) / _ELEMENTS[kind]
    return work + passes + _composed(p) + overhead


def _numba_cost(table: torch.Tensor, p: Problem) -> float:
    rows = p.out_block if p.op == "conv2d" else min(p.out_block, p.outputs // p.out_block)
    block = max(1, min(rows, gather_cpu.MAX_OUT_BLOCK))
    slab = table.shape[0] * rows * p.channels * p.area  # per group (a lower bound)
    return (
        p.macs * (_SLAB_ROW / block + _SLAB_ADD)
        + slab / _SLAB_BUILD
        + 2 * p.outputs / _ELEMENTS["cpu"]
        + _composed(p)
    )


def _native_cost(table: torch.Tensor, p: Problem) -> float:
    pixels = p.outputs // max(1, p.groups * p.out_block)
    mac, _ = native.plan_cost(
        table.shape[0], p.groups, p.out_block, p.channels * p.area, pixels, native.narrow(table)
    )
    return mac + (p.inputs + p.outputs) / native.ELEMENTS + _per_call("native", p)


def _triton_cost(table: torch.Tensor, p: Problem) -> float | None:
    """CUDA only: never chosen for CPU tensors (there it is Triton's interpreter)."""
    if p.device.type != "cuda":
        return None
    return p.macs / _TRITON_LOOKUPS + (p.inputs + p.outputs) / _ELEMENTS["cuda"]


def _torch_cost(table: torch.Tensor, p: Problem) -> float:
    return p.macs / _TORCH_LOOKUPS[_kind(p.device)] + _composed(p) + _per_call("torch", p)


def _reference_cost(table: torch.Tensor, p: Problem) -> float:
    return p.macs / _REFERENCE_LOOKUPS[_kind(p.device)] + _composed(p) + _per_call("reference", p)


def _from_module(name: str, module, **fields) -> Backend:
    """A backend whose conv2d, linear and matmul are the functions of `module`."""
    return Backend(name, module.conv2d, module.linear, module.matmul, **fields)


def _everywhere(table: torch.Tensor, device: torch.device) -> bool:
    return True


register_backend(_from_module("reference", reference, supports=_everywhere, cost=_reference_cost))
register_backend(_from_module("torch", gather_torch, supports=_everywhere, priority=1,
                              cost=_torch_cost))  # fmt: skip
register_backend(
    _from_module(
        "numba",
        gather_cpu,
        priority=2,
        cost=_numba_cost,
        supports=lambda table, device: device.type == "cpu" and gather_cpu.available(),
        missing=lambda: None if gather_cpu.available() else gather_cpu.MISSING,
    )  # fmt: skip
)
register_backend(
    _from_module(
        "lowrank",
        lowrank,
        priority=3,
        cost=_lowrank_cost,
        conv2d_float=lowrank.conv2d_float,
        fuses=lowrank.fuses,
        supports=lambda table, device: bool(factorize(table)),
    )  # fmt: skip
)
register_backend(
    _from_module(
        "native",
        native,
        supports=native.supports,
        priority=4,
        cost=_native_cost,
        zero_points=True,
        conv2d_float=native.conv2d_float,
        linear_float=native.linear_float,
        missing=lambda: None if native.available() else native.MISSING,
    )  # fmt: skip
)
register_backend(
    _from_module(
        "triton",
        triton_backend,
        supports=triton_backend.supports,
        priority=-1,  # never the cost-less fallback: on CPU it would be Triton's interpreter
        cost=_triton_cost,
        zero_points=True,
        conv2d_float=triton_backend.conv2d_float,
        linear_float=triton_backend.linear_float,
        missing=lambda: None if triton_backend.available() else triton_backend.MISSING,
    )  # fmt: skip
)
