"""`Multiplier`: an approximate multiplier as a full product table plus metadata.

Indexing convention (fixed project-wide): `table[ia, ib]` is the circuit's output for operands
whose two's-complement bit patterns are `ia = code_a & (2**a_bits - 1)` and
`ib = code_b & (2**b_bits - 1)`. For unsigned operands the index is the value itself; for signed
ones index 2**(n-1) holds -2**(n-1).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from axdnn.errors import MultiplierError

if TYPE_CHECKING:
    from axdnn.arith.metrics import ErrorMetrics

MIN_BITS = 2
MAX_BITS = 8


def operand_values(bits: int, signed: bool) -> torch.Tensor:
    """Operand value at each table index 0..2**bits-1 (int64): the index itself, or its
    two's-complement reading when `signed`."""
    idx = torch.arange(1 << bits, dtype=torch.int64)
    if signed:
        idx = torch.where(idx >= (1 << (bits - 1)), idx - (1 << bits), idx)
    return idx


def operand_range(bits: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest operand value of a `bits`-wide operand."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def operand_tag(bits: int, signed: bool) -> str:
    """Short tag of an operand domain, e.g. `u8`, `s4` (the spec-string suffix form)."""
    return f"{'s' if signed else 'u'}{bits}"


@dataclass(frozen=True)
class Operands:
    """Widths and signedness of a multiplier's two operands (what a spec's `@u8` suffix states)."""

    a_bits: int = 8
    b_bits: int = 8
    a_signed: bool = False
    b_signed: bool = False

    @property
    def tag(self) -> str:
        """Spec-suffix form: `u8` when both operands agree, else e.g. `u8xs8`."""
        ta = operand_tag(self.a_bits, self.a_signed)
        tb = operand_tag(self.b_bits, self.b_signed)
        return ta if ta == tb else f"{ta}x{tb}"

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `Multiplier(...)`."""
        return {
            "a_bits": self.a_bits,
            "b_bits": self.b_bits,
            "a_signed": self.a_signed,
            "b_signed": self.b_signed,
        }


@dataclass(frozen=True, eq=False)
class Multiplier:
    """An `a_bits` x `b_bits` integer multiplier given by its full product table (torch.int32).

    Equality and hashing are by content (`content_hash`: table, widths, signedness), so the same
    circuit loaded from a file and built from a model compares equal whatever its name. Treat the
    table as read-only: it is copied on construction and must not be changed afterwards.
    """

    table: torch.Tensor
    a_bits: int = 8
    b_bits: int = 8
    a_signed: bool = False
    b_signed: bool = False
    name: str = "unnamed"
    provenance: dict[str, Any] = field(default_factory=dict)
    power_mw: float | None = None
    area_um2: float | None = None
    delay_ns: float | None = None

    def __post_init__(self) -> None:
        for label, bits in (("a_bits", self.a_bits), ("b_bits", self.b_bits)):
            if isinstance(bits, bool) or not isinstance(bits, int):
                raise MultiplierError(
                    f"multiplier {self.name!r}: {label}={bits!r} is not an int; "
                    f"expected an integer width {MIN_BITS}..{MAX_BITS}"
                )
            if not MIN_BITS <= bits <= MAX_BITS:
                raise MultiplierError(
                    f"multiplier {self.name!r}: {label}={bits} is out of range; "
                    f"operand widths must be {MIN_BITS}..{MAX_BITS} bits"
                )
        if not isinstance(self.table, torch.Tensor):
            raise MultiplierError(
                f"multiplier {self.name!r}: table is a {type(self.table).__name__}, expected a "
                "torch.int32 tensor (use Multiplier.from_array for numpy or other integer arrays)"
            )
        if self.table.dtype != torch.int32:
            raise MultiplierError(
                f"multiplier {self.name!r}: table dtype is {self.table.dtype}, expected "
                "torch.int32 (Multiplier.from_array converts integer arrays with a range check)"
            )
        shape = (1 << self.a_bits, 1 << self.b_bits)
        if tuple(self.table.shape) != shape:
            raise MultiplierError(
                f"multiplier {self.name!r}: table shape is {tuple(self.table.shape)}, expected "
                f"{shape} for {self.a_bits}x{self.b_bits}-bit operands"
            )
        if not isinstance(self.provenance, dict):
            raise MultiplierError(
                f"multiplier {self.name!r}: provenance is a {type(self.provenance).__name__}, "
                "expected a dict"
            )
        table = self.table.detach().to("cpu").contiguous().clone()
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "a_signed", bool(self.a_signed))
        object.__setattr__(self, "b_signed", bool(self.b_signed))

    @classmethod
    def from_array(
        cls,
        values: Any,
        a_bits: int,
        b_bits: int,
        a_signed: bool = False,
        b_signed: bool = False,
        **meta: Any,
    ) -> Multiplier:
        """Build a Multiplier from any integer array-like (numpy, torch, nested lists) of shape
        (2**a_bits, 2**b_bits) or its flattened row-major form, checking it fits int32."""
        arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
        arr = np.asarray(arr)
        name = meta.get("name", "unnamed")
        if arr.dtype.kind not in "iub":
            raise MultiplierError(
                f"multiplier {name!r}: table has dtype {arr.dtype}, expected an integer dtype"
            )
        shape = (1 << a_bits, 1 << b_bits)
        if arr.size != shape[0] * shape[1]:
            raise MultiplierError(
                f"multiplier {name!r}: table has {arr.size} entries (shape {arr.shape}), expected "
                f"{shape[0] * shape[1]} = {shape[0]}x{shape[1]} for {a_bits}x{b_bits}-bit operands"
            )
        arr = arr.astype(np.int64).reshape(shape)
        lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
        if arr.size and (arr.min() < lo or arr.max() > hi):
            raise MultiplierError(
                f"multiplier {name!r}: table values span {arr.min()}..{arr.max()}, "
                "which does not fit int32"
            )
        table = torch.from_numpy(arr.astype(np.int32))
        return cls(table, a_bits, b_bits, a_signed, b_signed, **meta)

    # ---- identity -------------------------------------------------------------------------

    @cached_property
    def content_hash(self) -> str:
        """sha256 over widths, signedness and the int32 little-endian table bytes."""
        h = hashlib.sha256()
        header = f"axdnn-mul:{self.a_bits}:{self.b_bits}:{int(self.a_signed)}:{int(self.b_signed)};"
        h.update(header.encode())
        h.update(self.table.numpy().astype("<i4", copy=False).tobytes())
        return h.hexdigest()

    def __hash__(self) -> int:
        return hash(self.content_hash)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Multiplier):
            return NotImplemented
        return self.content_hash == other.content_hash

    def __repr__(self) -> str:
        return f"Multiplier(name={self.name!r}, {self.operand_tags}, hash={self.content_hash[:12]})"

    @property
    def operands(self) -> Operands:
        """The operand widths and signedness."""
        return Operands(self.a_bits, self.b_bits, self.a_signed, self.b_signed)

    @property
    def operand_tags(self) -> str:
        """Operand domains as in a spec suffix, e.g. `u8` or `u8xs8`."""
        return self.operands.tag

    # ---- operand domains ------------------------------------------------------------------

    def a_values(self) -> torch.Tensor:
        """Value of operand a at each table row index (int64)."""
        return operand_values(self.a_bits, self.a_signed)

    def b_values(self) -> torch.Tensor:
        """Value of operand b at each table column index (int64)."""
        return operand_values(self.b_bits, self.b_signed)

    @property
    def a_range(self) -> tuple[int, int]:
        """Smallest and largest value of operand a."""
        return operand_range(self.a_bits, self.a_signed)

    @property
    def b_range(self) -> tuple[int, int]:
        """Smallest and largest value of operand b."""
        return operand_range(self.b_bits, self.b_signed)

    def exact_table(self) -> torch.Tensor:
        """The exact product a*b laid out like `table` (int64)."""
        return self.a_values()[:, None] * self.b_values()[None, :]

    def error_table(self) -> torch.Tensor:
        """`table - exact_table()` (int64): the error of every operand pair."""
        return self.table.to(torch.int64) - self.exact_table()

    @property
    def is_exact(self) -> bool:
        """True when every entry equals the exact product."""
        return bool(torch.equal(self.table.to(torch.int64), self.exact_table()))

    # ---- lookups --------------------------------------------------------------------------

    def index_a(self, a_codes: Any) -> torch.Tensor:
        """Row indices (int64) of operand-a values, checking they lie in the operand range."""
        return _index(a_codes, self.a_bits, self.a_signed, f"{self.name} operand a")

    def index_b(self, b_codes: Any) -> torch.Tensor:
        """Column indices (int64) of operand-b values, checking they lie in the operand range."""
        return _index(b_codes, self.b_bits, self.b_signed, f"{self.name} operand b")

    def index(self, a_codes: Any, b_codes: Any | None = None) -> Any:
        """Table indices of operand values: `index(a)` for a, `index(a, b)` for a pair."""
        if b_codes is None:
            return self.index_a(a_codes)
        return self.index_a(a_codes), self.index_b(b_codes)

    def lookup(self, a_codes: Any, b_codes: Any) -> torch.Tensor:
        """Approximate products (int32) of operand values, broadcasting like `a * b`."""
        ia, ib = self.index(a_codes, b_codes)
        ia, ib = torch.broadcast_tensors(ia, ib)
        return self.table[ia, ib]

    # ---- metrics & records ----------------------------------------------------------------

    def metrics(self) -> ErrorMetrics:
        """Error metrics over all operand pairs (computed once, then cached)."""
        cached = self.__dict__.get("_metrics")
        if cached is None:
            from axdnn.arith.metrics import compute_metrics

            cached = compute_metrics(self)
            self.__dict__["_metrics"] = cached
        return cached

    def describe(self) -> dict[str, Any]:
        """JSON-ready record of the multiplier without its table."""
        return {
            "name": self.name,
            "a_bits": self.a_bits,
            "b_bits": self.b_bits,
            "a_signed": self.a_signed,
            "b_signed": self.b_signed,
            "content_hash": self.content_hash,
            "provenance": dict(self.provenance),
            "power_mw": self.power_mw,
            "area_um2": self.area_um2,
            "delay_ns": self.delay_ns,
        }


def _index(codes: Any, bits: int, signed: bool, where: str) -> torch.Tensor:
    t = torch.as_tensor(codes)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise MultiplierError(f"{where}: codes have dtype {t.dtype}, expected an integer tensor")
    t = t.to(torch.int64)
    lo, hi = operand_range(bits, signed)
    if t.numel() and (int(t.min()) < lo or int(t.max()) > hi):
        raise MultiplierError(
            f"{where}: codes span {int(t.min())}..{int(t.max())}, outside the "
            f"{operand_tag(bits, signed)} range {lo}..{hi}"
        )
    return t & ((1 << bits) - 1)
