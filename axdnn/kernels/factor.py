"""Exact integer low-rank decomposition of a product table, for the low-rank kernel backend.

Every table is rewritten, exactly, as

    D * T[a, b] = const + row[a] + col[b] + sum_i scale_i * u_i[a] * v_i[b]

with integers everywhere and |u_i|, |v_i| <= 128 ("atoms"). `row`/`col` sums are cheap (one pass
over each operand), so a layer costs one float32 conv/matmul per atom. How it is found:

1. Anchor: T~ = T - T[:, 0] - T[0, :] + T[0, 0] has rank <= rank(T) and a zero row/column 0;
   the removed parts go to `row`, `col`, `const`.
2. Pivot rows of T~, taken in order of popcount of the index (single-bit operands first), span
   its row space; every row is a rational combination of them. With D the common denominator of
   the coefficients, D*T~ = C @ P with integer C (coefficients) and P (pivot rows). This is tried
   on T~ and on its transpose; the cheaper exact one wins. Structured multipliers (exact, DRUM,
   operand or column truncation, most EvoApprox circuits) give D = 1 and small C.
3. Integer size reduction (unimodular column operations, like the size-reduction step of LLL)
   shrinks the pivot rows; a gcd per factor moves into `scale`.
4. Each factor is split into base-256 digits, each digit pair an atom with scale 256^(d+e). Two
   variants are kept: *centred* (factors offset to |x| <= 128, offsets into `row`/`col`/`const`;
   products <= 2^14, so long reductions fit one float32 call) and *raw* (no offsets, |x| <= 255,
   no correction passes; best for short reductions). The low-rank planner picks per layer.

Limits: tables of rank > MAX_RANK, or whose coefficients need a common denominator above
MAX_DENOMINATOR with the greedy pivot rows (e.g. some random integer low-rank tables: an HNF
lattice basis would fix that), get no decomposition and run on a gather backend.

The identity is verified in exact integer arithmetic before it is used, so a decomposition that
exists is correct by construction; `atom_count` is what the dispatcher compares with the gather
cost.
"""

from __future__ import annotations

import hashlib
import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

# Largest common denominator accepted for the rational coefficients.
MAX_DENOMINATOR = 1 << 12
# Largest magnitude of an atom factor in the centred variant (products <= 2^14) and in the raw one
# (no offsets, so no row/col corrections; products <= 2^16, for short reductions).
ATOM_LIMIT = 128
RAW_LIMIT = 255
# Tables of higher rank are left to the gather backends (more atoms than a gather costs).
MAX_RANK = 48
# Cached decompositions (keyed by table content).
_CACHE_SIZE = 64


@dataclass(frozen=True, eq=False)
class Atom:
    """One term `scale * u[a] * v[b]` of a decomposition, with |u|, |v| <= ATOM_LIMIT."""

    u: np.ndarray
    v: np.ndarray
    scale: int

    @property
    def bound(self) -> int:
        """Largest |u[a] * v[b]|: what one product adds to a float32 partial sum."""
        return int(np.abs(self.u).max(initial=0)) * int(np.abs(self.v).max(initial=0))


@dataclass(frozen=True, eq=False)
class TableFactors:
    """D * T = const + row[a] + col[b] + sum_i atoms[i] (all integer; see the module docstring)."""

    denominator: int
    const: int
    row: np.ndarray
    col: np.ndarray
    atoms: tuple[Atom, ...]
    rank: int

    @property
    def atom_count(self) -> int:
        return len(self.atoms)

    @property
    def has_offsets(self) -> bool:
        """True when the const/row/col corrections are non-zero."""
        return bool(self.const or self.row.any() or self.col.any())

    def reconstruct(self) -> np.ndarray:
        """D * T rebuilt from the parts (int64): used to verify the identity."""
        out = self.const + self.row[:, None] + self.col[None, :]
        for atom in self.atoms:
            out = out + atom.scale * np.outer(atom.u, atom.v)
        return out


# id(table) -> (weak reference, in-place version counter, digest): hashing a 256x256 table costs
# milliseconds, and a layer passes the same table object on every call.
_DIGESTS: dict[int, tuple[weakref.ref, int, str]] = {}


def table_digest(table: torch.Tensor) -> str:
    """Content hash of a table (shape and values), the key of every per-table cache; remembered
    per tensor object until it is modified in place or freed."""
    key = id(table)
    hit = _DIGESTS.get(key)
    if hit is not None and hit[0]() is table and hit[1] == table._version:
        return hit[2]
    arr = np.ascontiguousarray(table.detach().to("cpu", torch.int64).numpy())
    digest = hashlib.blake2b(arr.tobytes(), digest_size=16)
    digest.update(str(arr.shape).encode())
    value = digest.hexdigest()
    try:
        ref = weakref.ref(table, lambda _, key=key: _DIGESTS.pop(key, None))
    except TypeError:  # pragma: no cover - tensors support weak references
        return value
    _DIGESTS[key] = (ref, table._version, value)
    return value


_FACTORS: OrderedDict[str, tuple[TableFactors, ...]] = OrderedDict()


def factorize(table: torch.Tensor, digest: str | None = None) -> tuple[TableFactors, ...]:
    """Exact decompositions of `table` (centred first, then raw when it differs; cached by
    content); empty when none was found."""
    key = digest or table_digest(table)
    if key in _FACTORS:
        _FACTORS.move_to_end(key)
        return _FACTORS[key]
    result = factorize_array(table.detach().to("cpu", torch.int64).numpy())
    _FACTORS[key] = result
    while len(_FACTORS) > _CACHE_SIZE:
        _FACTORS.popitem(last=False)
    return result


def factorize_array(t: np.ndarray) -> tuple[TableFactors, ...]:
    """Uncached `factorize` on an int64 array."""
    t = np.asarray(t, dtype=np.int64)
    anchored = t - t[:, :1] - t[:1, :] + t[0, 0]
    best: dict[int, TableFactors] = {}
    for transpose in (False, True):
        mat = np.ascontiguousarray(anchored.T if transpose else anchored)
        split = _integer_split(mat)
        if split is None:
            continue
        denom, coeffs, pivots = split
        if transpose:
            v, u = _size_reduce(coeffs, pivots.T)
        else:
            u, v = _size_reduce(coeffs, pivots.T)
        for limit in (ATOM_LIMIT, RAW_LIMIT):
            found = _assemble(t, denom, u, v, coeffs.shape[1], limit)
            if found is None:
                continue
            if limit not in best or found.atom_count < best[limit].atom_count:
                best[limit] = found
    variants = [best[k] for k in (ATOM_LIMIT, RAW_LIMIT) if k in best]
    if len(variants) == 2 and not variants[0].has_offsets:
        variants = variants[:1]
    return tuple(variants)


def _pivot_rows(matf: np.ndarray) -> tuple[list[int], np.ndarray] | None:
    """Greedy Gram-Schmidt over rows in popcount order: (pivot rows, orthonormal basis Q), or
    None when the rank passes MAX_RANK."""
    rows, cols = matf.shape
    order = sorted(range(rows), key=lambda a: (bin(a).count("1"), a))
    q = np.zeros((0, cols))
    pivots: list[int] = []
    for a in order:
        vec = matf[a]
        norm = np.linalg.norm(vec)
        if norm == 0:
            continue
        for _ in range(2):
            vec = vec - q.T @ (q @ vec)
        rest = np.linalg.norm(vec)
        if rest > 1e-7 * norm:
            if len(pivots) == MAX_RANK:
                return None
            q = np.vstack([q, vec / rest])
            pivots.append(a)
    return pivots, q


def _integer_split(mat: np.ndarray) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(D, C, P) with D * mat == C @ P exactly, P pivot rows of mat, C integer; or None."""
    rows = mat.shape[0]
    matf = mat.astype(np.float64)
    found = _pivot_rows(matf)
    if found is None:
        return None
    pivots, q = found
    rank = len(pivots)
    if rank == 0:
        return 1, np.zeros((rows, 0), np.int64), np.zeros((0, mat.shape[1]), np.int64)
    p = mat[pivots]
    lower = matf[pivots] @ q.T  # P = L Q, so every row t = (t Q^T) L^-1 P
    coeffs = np.linalg.solve(lower.T, (matf @ q.T).T).T
    denom = 1
    for c in np.unique(np.round(coeffs, 6)):
        frac = Fraction(float(c)).limit_denominator(MAX_DENOMINATOR)
        denom = denom * frac.denominator // math.gcd(denom, frac.denominator)
        if denom > MAX_DENOMINATOR:
            return None
    c_int = np.round(coeffs * denom).astype(np.int64)
    if np.abs(c_int).max(initial=0) * np.abs(p).max(initial=0) * rank >= 1 << 62:
        return None
    if not np.array_equal(c_int @ p, denom * mat):
        return None
    return denom, c_int, p


def _span(x: np.ndarray) -> int:
    return int(x.max() - x.min()) if x.size else 0


def _size_reduce(keep: np.ndarray, shrink: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unimodular column operations that shrink the columns of `shrink` (keep @ shrink.T fixed)."""
    keep, shrink = keep.copy(), shrink.copy()
    r = shrink.shape[1]
    for _ in range(4):
        changed = False
        for i in range(r):
            for j in range(r):
                if i == j:
                    continue
                sj = shrink[:, j].astype(np.float64)
                denom = sj @ sj
                if denom == 0:
                    continue
                c = int(round(float(shrink[:, i].astype(np.float64) @ sj / denom)))
                if c == 0:
                    continue
                candidate = shrink[:, i] - c * shrink[:, j]
                if _span(candidate) < _span(shrink[:, i]):
                    shrink[:, i] = candidate
                    keep[:, j] = keep[:, j] + c * keep[:, i]
                    changed = True
        if not changed:
            break
    return keep, shrink


def _digits(x: np.ndarray, limit: int) -> tuple[int, list[np.ndarray]]:
    """(offset, digits) with x = offset + sum_d 256^d digits[d], each |digit| <= limit; with
    limit >= 255 no offset is used (raw variant)."""
    if np.abs(x).max(initial=0) <= limit:
        return 0, [x]
    offset = 0 if limit >= 255 else int((int(x.max()) + int(x.min())) // 2)
    rest = x - offset
    if np.abs(rest).max() <= limit:
        return offset, [rest]
    digits = []
    while rest.any():
        low = ((rest + 128) % 256) - 128
        digits.append(low)
        rest = (rest - low) // 256
    return offset, digits


def _assemble(
    t: np.ndarray, denom: int, u: np.ndarray, v: np.ndarray, rank: int, limit: int
) -> TableFactors | None:
    const = denom * int(t[0, 0])
    row = denom * (t[:, 0] - t[0, 0])
    col = denom * (t[0, :] - t[0, 0])
    row, col = row.astype(np.int64), col.astype(np.int64)
    atoms: list[Atom] = []
    for i in range(u.shape[1]):
        ui, vi = u[:, i], v[:, i]
        gu, gv = int(np.gcd.reduce(np.abs(ui))), int(np.gcd.reduce(np.abs(vi)))
        if gu == 0 or gv == 0:
            continue
        ui, vi, scale = ui // gu, vi // gv, gu * gv
        cu, du = _digits(ui, limit)
        cv, dv = _digits(vi, limit)
        const += scale * cu * cv
        row = row + scale * cv * (ui - cu)
        col = col + scale * cu * (vi - cv)
        for d, udig in enumerate(du):
            for e, vdig in enumerate(dv):
                if udig.any() and vdig.any():
                    atoms.append(Atom(udig, vdig, scale * 256 ** (d + e)))
    factors = TableFactors(denom, const, row, col, tuple(atoms), rank)
    if not np.array_equal(factors.reconstruct(), denom * t):
        return None
    return factors
