"""Counter-based randomness: every trial's draws are a pure function of (seed, trial, stream).

A campaign may run its trials in any order, in any batch grouping, in several processes or after a
restart, and trial `i` still sees exactly the same fault. The mixer is SplitMix64 (Steele, Lea &
Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014), vectorised in numpy uint64.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_STREAM = np.uint64(0xD6E8FEB86659FD93)
_MASK = (1 << 64) - 1


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@functools.lru_cache(maxsize=4096)
def _stream_base(seed: int, stream: int) -> int:
    """The mixed (seed, stream) key, computed once in Python integers (mod 2**64)."""
    z = ((seed & _MASK) * int(_GOLDEN) + stream * int(_STREAM)) & _MASK
    z = ((z ^ (z >> 30)) * int(_M1)) & _MASK
    z = ((z ^ (z >> 27)) * int(_M2)) & _MASK
    return z ^ (z >> 31)


def _bits(seed: int, trials: np.ndarray, streams: np.ndarray) -> np.ndarray:
    t = np.asarray(trials, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        return _mix(streams + (t + np.uint64(1)) * _GOLDEN)


def trial_bits(seed: int, trials: np.ndarray, stream: int) -> np.ndarray:
    """64 random bits (uint64) per trial for one named stream."""
    return _bits(seed, trials, np.uint64(_stream_base(seed, stream)))


def _unit(bits: np.ndarray) -> np.ndarray:
    return (bits >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def trial_uniform(seed: int, trials: np.ndarray, stream: int) -> np.ndarray:
    """Uniform float64 draws in [0, 1), one per trial, for one stream."""
    return _unit(trial_bits(seed, trials, stream))


def trial_uniforms(seed: int, trials: np.ndarray, streams: Sequence[int]) -> np.ndarray:
    """(len(streams), n) uniforms: row i equals `trial_uniform(seed, trials, streams[i])`, in
    one vectorised pass (cheaper than one call per stream for small n)."""
    keys = np.array([_stream_base(seed, s) for s in streams], dtype=np.uint64)[:, None]
    return _unit(_bits(seed, trials, keys))


def element_uniform(seed: int, trials: np.ndarray, stream: int, m: int) -> np.ndarray:
    """(n, m) uniform float64 draws in [0, 1): one per trial and element of a region."""
    base = trial_bits(seed, trials, stream)
    with np.errstate(over="ignore"):
        bits = _mix(base[:, None] + (np.arange(m, dtype=np.uint64)[None, :] + np.uint64(1)) * _M2)
    return (bits >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def trial_index(seed: int, trials: np.ndarray, stream: int, sizes: np.ndarray | int) -> np.ndarray:
    """Uniform integers in [0, size) per trial (size may differ per trial)."""
    u = trial_uniform(seed, trials, stream)
    sizes = np.asarray(sizes, dtype=np.int64)
    return np.minimum((u * sizes).astype(np.int64), sizes - 1)


def trial_generator(seed: int, trial: int, stream: int) -> torch.Generator:
    """A torch.Generator for one trial's bulk draws (noise over a whole tensor)."""
    bits = int(trial_bits(seed, np.array([trial]), stream)[0]) & 0x7FFFFFFFFFFFFFFF
    return torch.Generator().manual_seed(bits)
