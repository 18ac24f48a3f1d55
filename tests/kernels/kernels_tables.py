"""Product tables for kernel tests, built here so the tests do not depend on axdnn.arith.

Every table is indexed by operand bit pattern (two's complement for signed operands), int32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

EVOAPPROX = Path(__file__).resolve().parents[3] / "shared" / "data" / "evoapprox8u"


def values(bits: int, signed: bool) -> np.ndarray:
    idx = np.arange(1 << bits, dtype=np.int64)
    return np.where(idx >= 1 << (bits - 1), idx - (1 << bits), idx) if signed else idx


def _t(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr).astype(np.int32))


def exact(na: int = 8, nb: int = 8, signed: bool = False) -> torch.Tensor:
    return _t(np.outer(values(na, signed), values(nb, signed)))


def operand_truncation(k: int, bits: int = 8) -> torch.Tensor:
    """Both operands lose their k low bits before an exact multiply (rank 1)."""
    v = values(bits, False) >> k << k
    return _t(np.outer(v, v))


def column_truncation(k: int, bits: int = 8) -> torch.Tensor:
    """Array multiplier without the partial-product bits of weight < 2^k (error rank <= k)."""
    a = values(bits, False)
    av, bv = np.meshgrid(a, a, indexing="ij")
    t = av * bv
    for i in range(bits):
        for j in range(bits):
            if i + j < k:
                t -= ((av >> i) & 1) * ((bv >> j) & 1) << (i + j)
    return _t(t)


def drum(k: int, bits: int = 8) -> torch.Tensor:
    """DRUM (Hashemi et al., ICCAD 2015): k leading bits from the leading one, LSB set to 1."""

    def approx(x: int) -> int:
        if x < 1 << k:
            return x
        shift = x.bit_length() - k
        return ((x >> shift) | 1) << shift

    v = np.array([approx(int(x)) for x in values(bits, False)])
    return _t(np.outer(v, v))


def mitchell(bits: int = 8) -> torch.Tensor:
    """Mitchell's logarithmic multiplier (IRE Trans. EC-11, 1962), integer form."""
    out = np.zeros((1 << bits, 1 << bits), np.int64)
    for a in range(1, 1 << bits):
        ka = a.bit_length() - 1
        for b in range(1, 1 << bits):
            kb = b.bit_length() - 1
            fa, fb = a - (1 << ka), b - (1 << kb)  # mantissas scaled by 2^ka, 2^kb
            s = (fa << kb) + (fb << ka)  # (x_a + x_b) * 2^(ka+kb)
            if s < 1 << (ka + kb):
                out[a, b] = (1 << (ka + kb)) + s
            else:
                out[a, b] = s << 1
    return _t(out)


def random_table(na: int, nb: int, seed: int, lo: int = -30000, hi: int = 30000) -> torch.Tensor:
    """A random (full-rank with high probability) table."""
    return _t(np.random.default_rng(seed).integers(lo, hi, size=(1 << na, 1 << nb)))


def random_low_rank(na: int, nb: int, rank: int, seed: int) -> torch.Tensor:
    """Exact signed product plus a random integer error of the given rank."""
    rng = np.random.default_rng(seed)
    err = rng.integers(-9, 10, size=(1 << na, rank)) @ rng.integers(-9, 10, size=(rank, 1 << nb))
    return _t(np.outer(values(na, True), values(nb, True)) + err)


def evoapprox_tables() -> dict[str, torch.Tensor]:
    """Every EvoApprox 8x8 unsigned table in the shared data folder (empty when it is absent)."""
    if not EVOAPPROX.is_dir():
        return {}
    return {
        p.stem: _t(np.fromfile(p, dtype="<u2").astype(np.int64).reshape(256, 256))
        for p in sorted(EVOAPPROX.glob("mul8u_*.bin"))
    }
