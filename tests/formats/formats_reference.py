"""Slow, obviously correct per-element references for the formats tests: exact rationals
(fractions.Fraction) and, for floats, an explicit list of every representable value."""

from __future__ import annotations

import bisect
import math
from fractions import Fraction
from functools import lru_cache

# ---- fixed point ----------------------------------------------------------------------------


def round_fraction(s: Fraction, mode: str) -> int:
    """Round an exact rational to an integer in one of the deterministic modes."""
    if mode == "nearest_even":
        return round(s)  # Python rounds Fractions half to even
    if mode == "nearest_away":
        a = math.floor(abs(s) + Fraction(1, 2))
        return a if s >= 0 else -a
    if mode == "floor":
        return math.floor(s)
    if mode == "toward_zero":
        return math.trunc(s)
    raise ValueError(mode)


def ref_fixed(x: float, int_bits: int, frac_bits: int, signed: bool, mode: str, overflow: str):
    """Value of x in fxp I.F as a Fraction (None for NaN)."""
    bits = int_bits + frac_bits
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if math.isnan(x):
        return None
    if math.isinf(x):
        code = hi if x > 0 else lo
    else:
        code = round_fraction(Fraction(x) * 2**frac_bits, mode)
        if overflow == "saturate":
            code = min(max(code, lo), hi)
        else:
            code = (code - lo) % 2**bits + lo
    return Fraction(code, 2**frac_bits)


# ---- floating point -------------------------------------------------------------------------


def decode(E: int, M: int, m: int, bias: int) -> Fraction:
    """Value of exponent field E and mantissa field M."""
    if E == 0:
        return Fraction(M) * Fraction(2) ** (1 - bias - m)
    return Fraction(2**m + M) * Fraction(2) ** (E - bias - m)


@lru_cache(maxsize=256)
def float_table(e: int, m: int, bias: int, fn: bool, subnormals: bool):
    """Sorted non-negative grid: (value, E, M, virtual) for every finite encoding, followed by the
    'virtual' points that continue the grid beyond the largest finite value (reaching one of
    them means overflow)."""
    top = 2**e - 1
    rows = []
    for E in range(top + 1):
        for M in range(2**m):
            if E == top and (not fn or M == 2**m - 1):
                continue  # inf/NaN encodings
            if E == 0 and not subnormals and M != 0:
                continue
            rows.append((decode(E, M, m, bias), E, M, False))
    rows.sort()
    if fn and m > 0:  # the NaN code's value, then the next binade
        rows.append((decode(top, 2**m - 1, m, bias), top, 2**m - 1, True))
        rows.append((Fraction(2) ** (top - bias + 1), top + 1, 0, True))
    else:  # the inf (or, for fn with m = 0, NaN) code's value
        rows.append((Fraction(2) ** (top - bias), top, 0, True))
    return rows


@lru_cache(maxsize=256)
def _grid_values(e: int, m: int, bias: int, fn: bool, subnormals: bool):
    rows = float_table(e, m, bias, fn, subnormals)
    return [r[0] for r in rows], [r for r in rows if not r[3]][-1]


def _ulp_at(v: Fraction, emin: int, m: int) -> Fraction:
    """Grid spacing just above v (v on the grid)."""
    if v == 0:
        return Fraction(2) ** (emin - m)
    p = v.numerator.bit_length() - v.denominator.bit_length()
    if Fraction(2) ** p > v:
        p -= 1
    return Fraction(2) ** (max(p, emin) - m)


def ref_float(x: float, e, m, bias, fn, subnormals, mode, overflow, trunc) -> float:
    """x rounded to the float format described by the arguments (a Python float)."""
    rows = float_table(e, m, bias, fn, subnormals)
    values, largest = _grid_values(e, m, bias, fn, subnormals)
    emin = 1 - bias
    neg = math.copysign(1.0, x) < 0

    def signed(v: float) -> float:
        return -v if neg else v

    def overflowed():
        """The overflow result: the largest finite row (truncated later) or a special float."""
        if overflow == "saturate":
            return largest
        if overflow == "nan":
            return math.nan
        if mode == "toward_zero" or (mode == "floor" and not neg):
            return largest
        return signed(math.inf)

    if math.isnan(x):
        return math.nan
    if math.isinf(x):
        pick = x if overflow == "inf" else overflowed()
    else:
        ax = abs(Fraction(x))
        if not subnormals and ax < Fraction(2) ** emin:
            return signed(0.0)
        i = bisect.bisect_right(values, ax) - 1  # rows[i] <= ax
        lo = rows[i]
        hi = rows[i + 1] if i + 1 < len(rows) else None
        direction = {"floor": "up" if neg else "toward_zero"}.get(mode, mode)
        if lo[0] == ax or direction == "toward_zero":
            pick = lo
        elif hi is None:
            pick = overflowed()
        elif direction == "up":
            pick = hi
        else:
            dlo, dhi = ax - lo[0], hi[0] - ax
            if dlo != dhi:
                pick = lo if dlo < dhi else hi
            elif mode == "nearest_away":
                pick = hi
            else:  # ties: the even integer significand at lo's scale
                pick = lo if (lo[0] / _ulp_at(lo[0], emin, m)) % 2 == 0 else hi
        if isinstance(pick, tuple) and pick[3]:
            pick = overflowed()
    if isinstance(pick, float):
        return pick
    v = decode(pick[1], pick[2] & ~(2**trunc - 1), m, bias)
    return signed(float(v))


def float_grid(e, m, bias, fn, subnormals) -> set[float]:
    """Every finite representable value (both signs)."""
    vals = {float(r[0]) for r in float_table(e, m, bias, fn, subnormals) if not r[3]}
    return vals | {-v for v in vals}
