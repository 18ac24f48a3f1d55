"""Built-in behavioural models of approximate multipliers, tabulated over all operand pairs.

Each model is an unsigned "core" `f(a, b, a_bits, b_bits, *params)` on int64 numpy arrays that
broadcast like `a * b`. Signed operands use sign-magnitude wrapping for every model: the unsigned
core of the same width is applied to |a| and |b| (|-2**(n-1)| = 2**(n-1) still fits n unsigned
bits) and the result is negated when exactly one operand is negative. This is how DRUM (Hashemi et
al.) and RoBA (Zendegani et al.) build their signed versions; for the broken-array multiplier,
whose paper also gives a Baugh-Wooley signed array, we keep sign-magnitude so that every model's
signed error is the odd-symmetric image of its unsigned error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from axdnn.arith.multiplier import Multiplier, Operands, operand_values
from axdnn.errors import MultiplierError

Core = Callable[..., np.ndarray]


def bit_length(x: np.ndarray) -> np.ndarray:
    """Number of bits of each non-negative integer (0 for 0), vectorised and exact below 2**53."""
    return np.frexp(np.asarray(x, dtype=np.float64))[1].astype(np.int64)


# ---- unsigned cores -------------------------------------------------------------------------


def exact_core(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int) -> np.ndarray:
    """The exact product."""
    return a * b


def bam_core(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int, h: int, v: int) -> np.ndarray:
    """Broken-array multiplier (Mahdiani et al., "Bio-inspired imprecise computational blocks for
    efficient VLSI implementation of soft-computing applications", IEEE TCAS-I 57(4), 2010).

    The partial product a_i*b_j (row j, column i+j) is omitted when j < h (horizontal break level:
    the h least-significant rows) or i + j < v (vertical break level: the v least-significant
    columns); the remaining partial products are summed exactly.
    """
    out = np.zeros(np.broadcast_shapes(np.shape(a), np.shape(b)), dtype=np.int64)
    for j in range(h, b_bits):
        cut = max(v - j, 0)
        kept_a = (a >> cut) << cut
        out = out + ((kept_a * ((b >> j) & 1)) << j)
    return out


def trunc_core(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int, k: int) -> np.ndarray:
    """Column truncation: the k least-significant partial-product columns are dropped (no
    correction constant), i.e. BAM with h=0, v=k. For u8 with k=8 this gives ER 98.05%,
    NMED 0.689% (normalised by 255**2) and WCE 1793 = sum_{c<8} (c+1) 2**c."""
    return bam_core(a, b, a_bits, b_bits, 0, k)


def otrunc_core(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int, k: int) -> np.ndarray:
    """Operand truncation: zero the k least-significant bits of both operands, multiply exactly."""
    return ((a >> k) << k) * ((b >> k) << k)


def drum_operand(x: np.ndarray, k: int) -> np.ndarray:
    """DRUM's operand approximation: keep the k bits from the leading one, force the lowest kept
    bit to 1, shift back; operands below 2**k are kept exactly."""
    shift = np.maximum(bit_length(x) - k, 0)
    return np.where(shift > 0, ((x >> shift) | 1) << shift, x)


def drum_core(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int, k: int) -> np.ndarray:
    """DRUM-k (Hashemi, Bahar & Reda, "DRUM: A dynamic range unbiased multiplier for approximate
    applications", ICCAD 2015): exact product of the two k-bit unbiased segments, shifted back."""
    return drum_operand(a, k) * drum_operand(b, k)


def mitchell_core(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int) -> np.ndarray:
    """Mitchell's logarithmic multiplier (J. N. Mitchell, "Computer multiplication and division
    using binary logarithms", IRE Trans. Electronic Computers, 1962).

    With a = 2**ka (1 + xa): log2 a ~ ka + xa; the antilog of ka + kb + xa + xb is 2**(ka+kb)
    (1 + xa + xb) if xa + xb < 1, else 2**(ka+kb+1) (xa + xb). For integer operands both are
    integers (the fraction bits are exact), so the floor of the antilog is the value itself.
    """
    ka = np.maximum(bit_length(a) - 1, 0)
    kb = np.maximum(bit_length(b) - 1, 0)
    frac_sum = (a - (1 << ka)) * (1 << kb) + (b - (1 << kb)) * (1 << ka)  # (xa+xb) 2**(ka+kb)
    base = 1 << (ka + kb)
    approx = np.where(frac_sum < base, base + frac_sum, 2 * frac_sum)
    return np.where((a == 0) | (b == 0), 0, approx)


def roba_round(x: np.ndarray) -> np.ndarray:
    """Nearest power of two (0 for 0); the tie 3*2**(p-1) goes up to 2**(p+1), as RoBA's rounding
    logic does."""
    p = np.where(x > 0, 1 << np.maximum(bit_length(x) - 1, 0), 0)
    return np.where(2 * x >= 3 * p, 2 * p, p)


def roba_core(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int) -> np.ndarray:
    """RoBA (Zendegani, Kamal, Bahadori, Afzali-Kusha & Pedram, "RoBA multiplier: A rounding-based
    approximate multiplier for high-speed yet energy-efficient digital signal processing",
    IEEE TVLSI 25(2), 2017): A*B ~ Ar*B + A*Br - Ar*Br, i.e. A*B - (A-Ar)(B-Br)."""
    ar, br = roba_round(a), roba_round(b)
    return ar * b + a * br - ar * br


def _threes(x: np.ndarray, bits: int) -> np.ndarray:
    """sum_i [2-bit digit i of x == 3] * 4**i."""
    out = np.zeros_like(x)
    for i in range((bits + 1) // 2):
        out = out + (((x >> (2 * i)) & 3) == 3) * (1 << (2 * i))
    return out


def udm_core(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int) -> np.ndarray:
    """Kulkarni, Gupta & Ercegovac's underdesigned multiplier ("Trading accuracy for power with an
    underdesigned multiplier architecture", VLSI Design 2011).

    The 2x2 block outputs 7 for 3*3 (exact otherwise); wider multipliers sum the shifted block
    products with exact adders, i.e. A*B ~ sum_ij M2(A_i, B_j) 4**(i+j) over the 2-bit digits
    (odd widths get a zero top bit). Hence approx = A*B - 2 * T(A) * T(B) with T as in `_threes`.
    """
    return a * b - 2 * _threes(a, a_bits) * _threes(b, b_bits)


def etm_core(a: np.ndarray, b: np.ndarray, a_bits: int, b_bits: int, k: int) -> np.ndarray:
    """Error-tolerant multiplier (Kyaw, Goh & Yeo, "Low-power high-speed multiplier for
    error-tolerant application", IEEE EDSSC 2010), with a k-bit non-multiplication (LSB) part.

    If both MSB parts (a >> k, b >> k) are zero the LSB parts are multiplied exactly. Otherwise the
    MSB parts are multiplied exactly into product bits 2k and up, and the 2k low product bits come
    from the non-multiplication part: scanning operand bit i = k-1..0, product bit k+i is 1 from
    the first position where a_i or b_i is 1 downwards, and product bits k-1..0 are all 1 when any
    LSB bit is 1 (the paper's bit-OR checking scheme for the non-multiplication part).
    """
    mask = (1 << k) - 1
    ah, bh, al, bl = a >> k, b >> k, a & mask, b & mask
    ored = al | bl
    span = bit_length(ored)  # bits k..k+span-1 of the product are set
    low = np.where(ored > 0, (((1 << span) - 1) << k) | mask, 0)
    return np.where((ah == 0) & (bh == 0), al * bl, ((ah * bh) << (2 * k)) + low)


# ---- model table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """A built-in behavioural model: its unsigned core, parameter names, valid parameter ranges
    for given widths, representative parameters per width (for the catalogue) and citation."""

    name: str
    core: Core
    params: tuple[str, ...]
    ranges: Callable[[int, int], tuple[tuple[int, int], ...]]
    representative: Callable[[int], list[tuple[int, ...]]]
    cite: str

    def check(self, values: Sequence[int], ops: Operands) -> None:
        """Raise MultiplierError unless `values` are valid parameters at these widths."""
        if len(values) != len(self.params):
            want = ",".join(p.upper() for p in self.params)
            form = f"{self.name}:{want}" if self.params else self.name
            raise MultiplierError(
                f"multiplier model {self.name!r} takes {len(self.params)} parameter(s), got "
                f"{len(values)} ({list(values)}); write it as {form!r}"
            )
        for pname, value, (lo, hi) in zip(
            self.params, values, self.ranges(ops.a_bits, ops.b_bits), strict=True
        ):
            if not lo <= value <= hi:
                raise MultiplierError(
                    f"multiplier model {self.name!r}: {pname.upper()}={value} is out of range "
                    f"for {ops.tag} operands; accepted {lo}..{hi}"
                )


def _one(lo: int, hi: Callable[[int, int], int]) -> Callable[[int, int], tuple[tuple[int, int]]]:
    return lambda na, nb: ((lo, hi(na, nb)),)


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("exact", exact_core, (), lambda na, nb: (), lambda n: [()], "exact product"),
        Model(
            "trunc",
            trunc_core,
            ("k",),
            _one(0, lambda na, nb: na + nb - 1),
            lambda n: [(n // 2,), (n,)],
            "column truncation = BAM(0, K), Mahdiani et al. TCAS-I 2010",
        ),
        Model(
            "bam",
            bam_core,
            ("h", "v"),
            lambda na, nb: ((0, nb), (0, na + nb - 1)),
            lambda n: [(n // 4, n)],
            "broken-array multiplier, Mahdiani et al. TCAS-I 2010",
        ),
        Model(
            "otrunc",
            otrunc_core,
            ("k",),
            _one(0, lambda na, nb: min(na, nb)),
            lambda n: [(k,) for k in sorted({1, max(n // 4, 1)})],
            "operand truncation (K LSBs of both operands zeroed)",
        ),
        Model(
            "drum",
            drum_core,
            ("k",),
            _one(1, lambda na, nb: max(na, nb)),
            lambda n: [(k,) for k in (3, 4, 6) if k < n] or [(n - 1,)],
            "DRUM-k, Hashemi, Bahar & Reda, ICCAD 2015",
        ),
        Model("mitchell", mitchell_core, (), lambda na, nb: (), lambda n: [()], "Mitchell 1962"),
        Model("roba", roba_core, (), lambda na, nb: (), lambda n: [()], "RoBA, Zendegani TVLSI'17"),
        Model("udm", udm_core, (), lambda na, nb: (), lambda n: [()], "UDM, Kulkarni VLSI'11"),
        Model(
            "etm",
            etm_core,
            ("k",),
            _one(1, lambda na, nb: min(na, nb)),
            lambda n: [(n // 2,)],
            "error-tolerant multiplier, Kyaw, Goh & Yeo, EDSSC 2010",
        ),
    )
}


def model_table(core: Core, ops: Operands, params: Sequence[int] = ()) -> np.ndarray:
    """Tabulate a core over all operand pairs (int64, table[ia, ib] convention), applying
    sign-magnitude wrapping for signed operands."""
    av = operand_values(ops.a_bits, ops.a_signed).numpy()[:, None]
    bv = operand_values(ops.b_bits, ops.b_signed).numpy()[None, :]
    mag = core(np.abs(av), np.abs(bv), ops.a_bits, ops.b_bits, *params)
    mag = np.broadcast_to(np.asarray(mag, dtype=np.int64), (av.shape[0], bv.shape[1]))
    negative = (av < 0) ^ (bv < 0)
    return np.where(negative, -mag, mag)


def canonical_name(model: str, params: Sequence[int], ops: Operands) -> str:
    """Canonical spec of a built-in model, e.g. `bam:2,6@u8`."""
    body = f"{model}:{','.join(str(p) for p in params)}" if params else model
    return f"{body}@{ops.tag}"


def build_model(model: str, params: Sequence[int], ops: Operands) -> Multiplier:
    """Multiplier of a built-in behavioural model with validated parameters."""
    if model not in MODELS:
        raise MultiplierError(
            f"unknown behavioural model {model!r}; known: {', '.join(sorted(MODELS))}"
        )
    spec = MODELS[model]
    spec.check(params, ops)
    table = model_table(spec.core, ops, params)
    return Multiplier(
        torch.from_numpy(table.astype(np.int32)),
        name=canonical_name(model, params, ops),
        provenance={
            "model": model,
            "params": dict(zip(spec.params, (int(p) for p in params), strict=True)),
            "signed_mode": "sign-magnitude" if ops.a_signed or ops.b_signed else "unsigned",
            "source": spec.cite,
        },
        **ops.as_kwargs(),
    )
