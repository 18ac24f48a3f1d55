"""Slow, obviously correct scalar reference models (one operand pair at a time), written from the
papers' descriptions independently of the vectorised models in axdnn.arith.models."""

from __future__ import annotations

from fractions import Fraction
from math import floor


def bits_of(x: int, n: int) -> list[int]:
    return [(x >> i) & 1 for i in range(n)]


def bam_ref(a: int, b: int, na: int, nb: int, h: int, v: int) -> int:
    """Sum of partial products a_i b_j 2**(i+j), skipping rows j < h and columns i + j < v."""
    total = 0
    for j, bj in enumerate(bits_of(b, nb)):
        for i, ai in enumerate(bits_of(a, na)):
            if j >= h and i + j >= v:
                total += (ai & bj) << (i + j)
    return total


def otrunc_ref(a: int, b: int, na: int, nb: int, k: int) -> int:
    mask = ~((1 << k) - 1)
    return (a & mask) * (b & mask)


def _drum_op(x: int, k: int) -> int:
    t = x.bit_length()
    if t <= k:
        return x
    shift = t - k
    segment = (x >> shift) | 1
    return segment << shift


def drum_ref(a: int, b: int, na: int, nb: int, k: int) -> int:
    return _drum_op(a, k) * _drum_op(b, k)


def mitchell_ref(a: int, b: int, na: int, nb: int) -> int:
    """floor(antilog2(log2~(a) + log2~(b))) with Mitchell's piecewise-linear log and antilog."""
    if a == 0 or b == 0:
        return 0
    ka, kb = a.bit_length() - 1, b.bit_length() - 1
    xa, xb = Fraction(a, 2**ka) - 1, Fraction(b, 2**kb) - 1
    log_sum = ka + kb + xa + xb
    characteristic = floor(log_sum)
    mantissa = log_sum - characteristic
    return floor(Fraction(2) ** characteristic * (1 + mantissa))


def _nearest_pow2(x: int) -> int:
    if x == 0:
        return 0
    candidates = [2**p for p in range(0, 12)]
    best = min(abs(x - c) for c in candidates)
    return max(c for c in candidates if abs(x - c) == best)  # ties go up


def roba_ref(a: int, b: int, na: int, nb: int) -> int:
    ar, br = _nearest_pow2(a), _nearest_pow2(b)
    return ar * b + br * a - ar * br


def _udm_block(a: int, b: int, n: int) -> int:
    if n == 2:
        return 7 if (a, b) == (3, 3) else a * b
    h = n // 2
    lo = (1 << h) - 1
    ah, al, bh, bl = a >> h, a & lo, b >> h, b & lo
    return (
        (_udm_block(ah, bh, h) << (2 * h))
        + ((_udm_block(ah, bl, h) + _udm_block(al, bh, h)) << h)
        + _udm_block(al, bl, h)
    )


def udm_ref(a: int, b: int, na: int, nb: int) -> int:
    """Kulkarni's recursive composition over the next power-of-two width (zero-padded)."""
    n = 2
    while n < max(na, nb):
        n *= 2
    return _udm_block(a, b, n)


def etm_ref(a: int, b: int, na: int, nb: int, k: int) -> int:
    ah, bh = a >> k, b >> k
    al, bl = a & ((1 << k) - 1), b & ((1 << k) - 1)
    if ah == 0 and bh == 0:
        return al * bl
    out = (ah * bh) << (2 * k)
    seen_one = False
    for i in range(k - 1, -1, -1):  # scan the non-multiplication part from its MSB
        seen_one = seen_one or bool((al >> i) & 1) or bool((bl >> i) & 1)
        if seen_one:
            out |= 1 << (k + i)
    if seen_one:
        out |= (1 << k) - 1
    return out


def exact_ref(a: int, b: int, na: int, nb: int) -> int:
    return a * b


REFS = {
    "exact": exact_ref,
    "trunc": lambda a, b, na, nb, k: bam_ref(a, b, na, nb, 0, k),
    "bam": bam_ref,
    "otrunc": otrunc_ref,
    "drum": drum_ref,
    "mitchell": mitchell_ref,
    "roba": roba_ref,
    "udm": udm_ref,
    "etm": etm_ref,
}


def signed_value(index: int, bits: int, signed: bool) -> int:
    if signed and index >= 1 << (bits - 1):
        return index - (1 << bits)
    return index


def model_ref(model: str, a: int, b: int, na: int, nb: int, *params: int) -> int:
    """Sign-magnitude wrapping of the unsigned reference (values, not indices)."""
    mag = REFS[model](abs(a), abs(b), na, nb, *params)
    return -mag if (a < 0) != (b < 0) else mag
