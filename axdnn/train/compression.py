"""Gradient compression for data-parallel training as DDP communication hooks
(`DistributedDataParallel.register_comm_hook(state, hook)`, `hook(state, bucket) -> Future`).

- `topk`: top-k sparsification with error feedback (deep gradient compression, Lin et al. 2017,
  without its momentum correction and clipping): each rank sends the k = ceil(ratio * n) largest
  entries of gradient + residual as (fp32 value, int32 index) pairs, all-gathered; every rank adds
  all ranks' pairs in rank order, so all end with the same average; the unsent rest is the residual.
- `sign`: 1-bit compression with error feedback (Seide et al. 2014): the signs of gradient +
  residual, packed 8 to a byte, and one fp32 scale, mean |g + residual|; the residual keeps what
  the reconstruction scale * sign missed.
- `adacomp`: adaptive residual gradient compression (Chen et al. 2017): G = residual + g and
  H = G + g; in each bin of `bin_size` entries every entry with |H| >= max|G| over the bin is
  sent (fp32 value of G and int32 index; the paper's further quantization of the sent values is
  not applied). Ranks first all-gather their counts and pad to the largest one.
- `fp16`, `powersgd`, `none`: torch's own `fp16_compress_hook`, `powerSGD_hook` (rank
  `rank`, error feedback, warm start) and plain `allreduce_hook` as baselines.

Every hook counts what it sends (`CommCounter`): payload bytes handed to each collective and wire
bytes per rank in the ring model (all-reduce of B bytes: 2 (W-1)/W B; all-gather of B bytes per
rank: (W-1) B), beside what a plain fp32 all-reduce of the same buckets would have sent.
(No `from __future__ import annotations` here: DDP checks the hooks' annotations at run time.)
"""

import contextlib
import math
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd
from torch.futures import Future

from axdnn.errors import ConfigError

COMPRESSORS = ("none", "fp16", "powersgd", "topk", "sign", "adacomp")


@dataclass(frozen=True)
class CompressionConfig:
    """Which compressor a data-parallel run uses and its settings."""

    compressor: str = "none"
    ratio: float = 0.01
    bin_size: int = 50
    rank: int = 1

    def __post_init__(self) -> None:
        if self.compressor not in COMPRESSORS:
            raise ConfigError(
                f"gradient compressor {self.compressor!r} is unknown; expected one of "
                f"{', '.join(COMPRESSORS)}"
            )
        if not 0 < self.ratio <= 1:
            raise ConfigError(f"top-k ratio {self.ratio!r} must be in (0, 1]")
        if self.bin_size < 1:
            raise ConfigError(f"AdaComp bin size {self.bin_size!r} must be >= 1")
        if self.rank < 1:
            raise ConfigError(f"PowerSGD rank {self.rank!r} must be >= 1")

    def to_dict(self) -> dict:
        return {
            "compressor": self.compressor,
            "ratio": self.ratio,
            "bin_size": self.bin_size,
            "rank": self.rank,
        }


@dataclass
class CommCounter:
    """Bytes one rank communicated, and what plain fp32 all-reduce would have."""

    world_size: int = 1
    calls: int = 0
    payload_bytes: int = 0
    wire_bytes: float = 0.0
    fp32_wire_bytes: float = 0.0
    buckets: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def allreduce(self, nbytes: int) -> None:
        w = self.world_size
        with self._lock:
            self.calls += 1
            self.payload_bytes += nbytes
            self.wire_bytes += 2 * (w - 1) / w * nbytes

    def allgather(self, nbytes: int) -> None:
        with self._lock:
            self.calls += 1
            self.payload_bytes += nbytes
            self.wire_bytes += (self.world_size - 1) * nbytes

    def bucket(self, numel: int) -> None:
        w = self.world_size
        with self._lock:
            self.buckets += 1
            self.fp32_wire_bytes += 2 * (w - 1) / w * 4 * numel

    @property
    def ratio(self) -> float:
        """fp32 all-reduce bytes over the bytes sent (how many times less was sent)."""
        return self.fp32_wire_bytes / self.wire_bytes if self.wire_bytes else math.inf

    def to_dict(self) -> dict:
        return {
            "world_size": self.world_size,
            "calls": self.calls,
            "buckets": self.buckets,
            "payload_bytes": self.payload_bytes,
            "wire_bytes": self.wire_bytes,
            "fp32_wire_bytes": self.fp32_wire_bytes,
            "compression_ratio": self.ratio,
        }


@dataclass
class CompressorState:
    """What a hook carries between steps: settings, the residual of each bucket, the counter."""

    config: CompressionConfig
    counter: CommCounter
    group: dist.ProcessGroup | None = None
    residuals: dict[int, Tensor] = field(default_factory=dict)

    @property
    def world_size(self) -> int:
        return dist.get_world_size(self.group)


# ---------------------------------------------------------------------------------------------
# Counted collectives


def _all_gather(state: CompressorState, tensor: Tensor) -> list[Tensor]:
    out = [torch.empty_like(tensor) for _ in range(state.world_size)]
    dist.all_gather(out, tensor.contiguous(), group=state.group)
    state.counter.allgather(tensor.numel() * tensor.element_size())
    return out


def _done(result: Tensor) -> Future[Tensor]:
    fut: Future[Tensor] = Future()
    fut.set_result(result)
    return fut


def _with_residual(state: CompressorState, bucket: dist.GradBucket) -> Tensor:
    grad = bucket.buffer()
    state.counter.bucket(grad.numel())
    residual = state.residuals.get(bucket.index())
    return grad.clone() if residual is None else grad + residual


def _sum_sparse(state: CompressorState, n: int, values: Tensor, indices: Tensor) -> Tensor:
    """All ranks' (value, index) pairs added in rank order and averaged: the same on every rank."""
    out = torch.zeros(n, dtype=values.dtype, device=values.device)
    all_values, all_indices = _all_gather(state, values), _all_gather(state, indices)
    for v, i in zip(all_values, all_indices, strict=True):
        out.index_add_(0, i.long(), v)
    return out / state.world_size


# ---------------------------------------------------------------------------------------------
# Hooks


def topk_hook(state: CompressorState, bucket: dist.GradBucket) -> Future[Tensor]:
    """Top-k sparsification with error feedback (DGC)."""
    acc = _with_residual(state, bucket)
    k = max(1, math.ceil(state.config.ratio * acc.numel()))
    indices = acc.abs().topk(k, sorted=False).indices
    values = acc[indices]
    residual = acc
    residual[indices] = 0
    state.residuals[bucket.index()] = residual
    return _done(_sum_sparse(state, acc.numel(), values.clone(), indices.to(torch.int32)))


_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_bits(bits: Tensor) -> Tensor:
    """Booleans packed 8 to a uint8, most significant bit first (zero-padded)."""
    pad = (-bits.numel()) % 8
    zeros = torch.zeros(pad, dtype=torch.uint8, device=bits.device)
    b = torch.cat([bits.to(torch.uint8), zeros]).view(-1, 8)
    return (b * _BIT_WEIGHTS.to(bits.device)).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, n: int) -> Tensor:
    """The first `n` booleans of `pack_bits` output."""
    return (packed[:, None] & _BIT_WEIGHTS.to(packed.device)).ne(0).reshape(-1)[:n]


def sign_hook(state: CompressorState, bucket: dist.GradBucket) -> Future[Tensor]:
    """1-bit sign compression with error feedback, scale = mean |g + residual|."""
    acc = _with_residual(state, bucket)
    n = acc.numel()
    scale = acc.abs().mean().reshape(1)
    positive = acc >= 0
    state.residuals[bucket.index()] = acc - torch.where(positive, scale, -scale)
    signs, scales = _all_gather(state, pack_bits(positive)), _all_gather(state, scale)
    out = torch.zeros_like(acc)
    for packed, s in zip(signs, scales, strict=True):
        out += torch.where(unpack_bits(packed, n), s, -s)
    return _done(out / state.world_size)


def adacomp_select(acc: Tensor, grad: Tensor, bin_size: int) -> Tensor:
    """Indices AdaComp sends: |G + g| >= max |G| over the entry's bin (G = residual + g)."""
    n = acc.numel()
    pad = (-n) % bin_size
    padded = torch.cat([acc.abs(), acc.new_zeros(pad)]).view(-1, bin_size)
    bin_max = padded.amax(dim=1).repeat_interleave(bin_size)[:n]
    return torch.nonzero((acc + grad).abs() >= bin_max).flatten()


def adacomp_hook(state: CompressorState, bucket: dist.GradBucket) -> Future[Tensor]:
    """Adaptive residual gradient compression (AdaComp)."""
    grad = bucket.buffer()
    acc = _with_residual(state, bucket)
    indices = adacomp_select(acc, grad, state.config.bin_size)
    count = torch.tensor([indices.numel()], dtype=torch.int64, device=acc.device)
    width = int(max(int(c) for c in _all_gather(state, count)))
    values = acc.new_zeros(width)
    values[: indices.numel()] = acc[indices]
    sent = torch.zeros(width, dtype=torch.int32, device=acc.device)
    sent[: indices.numel()] = indices.to(torch.int32)
    residual = acc
    residual[indices] = 0
    state.residuals[bucket.index()] = residual
    return _done(_sum_sparse(state, acc.numel(), values, sent))


# ---------------------------------------------------------------------------------------------
# torch's hooks, counted


class _CountingDist(types.SimpleNamespace):
    """Stands in for `torch.distributed` inside torch's hook modules: counts all_reduce calls."""

    def __init__(self, counter: CommCounter) -> None:
        super().__init__()
        self._counter = counter

    def all_reduce(self, tensor: Tensor, *args, **kwargs):
        self._counter.allreduce(tensor.numel() * tensor.element_size())
        return dist.all_reduce(tensor, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(dist, name)


@contextlib.contextmanager
def counting_torch_hooks(counter: CommCounter) -> Iterator[None]:
    """While inside, the all-reduces of torch's default and PowerSGD hooks are counted."""
    proxy = _CountingDist(counter)
    saved = (default_hooks.dist, powersgd.dist)
    default_hooks.dist = powersgd.dist = proxy
    try:
        yield
    finally:
        default_hooks.dist, powersgd.dist = saved


def _counted(hook: Callable) -> Callable:
    def counted(state, bucket: dist.GradBucket):
        state.counter.bucket(bucket.buffer().numel())
        return hook(state.inner, bucket)

    return counted


@dataclass
class _TorchHookState:
    counter: CommCounter
    inner: object


def make_hook(
    config: CompressionConfig, counter: CommCounter, group: dist.ProcessGroup | None = None
) -> tuple[object, Callable]:
    """(state, hook) to pass to `DistributedDataParallel.register_comm_hook`."""
    name = config.compressor
    if name == "none":
        return _TorchHookState(counter, group), _counted(default_hooks.allreduce_hook)
    if name == "fp16":
        return _TorchHookState(counter, group), _counted(default_hooks.fp16_compress_hook)
    if name == "powersgd":
        inner = powersgd.PowerSGDState(
            process_group=group,
            matrix_approximation_rank=config.rank,
            start_powerSGD_iter=2,
            min_compression_rate=1,
            random_seed=0,
        )
        return _TorchHookState(counter, inner), _counted(powersgd.powerSGD_hook)
    hooks = {"topk": topk_hook, "sign": sign_hook, "adacomp": adacomp_hook}
    return CompressorState(config, counter, group), hooks[name]


def nominal_ratio(config: CompressionConfig, numel: int, world_size: int = 2) -> float | None:
    """The compression ratio a fixed-size compressor gives one bucket of `numel` values (None for
    the data-dependent ones: AdaComp, PowerSGD)."""
    fp32 = 2 * (world_size - 1) / world_size * 4 * numel
    if config.compressor == "none":
        return 1.0
    if config.compressor == "fp16":
        return 2.0
    if config.compressor == "topk":
        k = max(1, math.ceil(config.ratio * numel))
        return fp32 / ((world_size - 1) * 8 * k)
    if config.compressor == "sign":
        return fp32 / ((world_size - 1) * (math.ceil(numel / 8) + 4))
    return None
