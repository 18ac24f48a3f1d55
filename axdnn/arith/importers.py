"""Importers: product tables from files (raw binary, .npy, CSV/text) and behavioural C models.

Tables follow the project convention `table[ia, ib]` with ia, ib the operands' two's-complement bit
patterns; raw binary files hold the table row-major (entry `ia * 2**b_bits + ib`), as the EvoApprox
library's 8-bit tables do (uint16 little-endian for unsigned multipliers).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from axdnn.arith import csandbox
from axdnn.arith.multiplier import MAX_BITS, MIN_BITS, Multiplier, Operands, operand_range
from axdnn.errors import MultiplierError

_DTYPES = {
    "u8": "u1", "uint8": "u1", "u16": "u2", "uint16": "u2", "u32": "u4", "uint32": "u4",
    "i8": "i1", "s8": "i1", "int8": "i1", "i16": "i2", "s16": "i2", "int16": "i2",
    "i32": "i4", "s32": "i4", "int32": "i4",
}  # fmt: skip
DTYPE_NAMES = tuple(_DTYPES)


def parse_dtype(text: str, where: str = "table dtype") -> np.dtype:
    """Raw-table dtype from `u16`, `uint16`, `i16le`, `u16be` or numpy's `<u2`; little-endian
    unless stated."""
    t = text.strip().lower()
    m = re.fullmatch(r"([<>]?)([ui][124])", t)
    if m:
        return np.dtype((m.group(1) or "<") + m.group(2))
    endian = "<"
    if t.endswith(("le", "be")):
        endian = "<" if t.endswith("le") else ">"
        t = t[:-2].rstrip("_-")
    if t not in _DTYPES:
        raise MultiplierError(
            f"{where}: unknown dtype {text!r}; accepted {', '.join(DTYPE_NAMES)} "
            "(optionally with le/be), or numpy codes like <u2"
        )
    return np.dtype(endian + _DTYPES[t])


def is_dtype_name(text: str) -> bool:
    """True when `text` parses as a raw-table dtype."""
    try:
        parse_dtype(text)
    except MultiplierError:
        return False
    return True


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _widths_from_count(count: int, path: Path) -> tuple[int, int]:
    for n in range(MIN_BITS, MAX_BITS + 1):
        if count == 1 << (2 * n):
            return n, n
    raise MultiplierError(
        f"table file {path}: {count} entries is not 4**n for a square n x n table with "
        f"n in {MIN_BITS}..{MAX_BITS}; state the operand widths with a suffix such as @u8 or @u8x4"
    )


def _widths_from_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int]:
    if len(shape) == 1:
        return _widths_from_count(shape[0], path)
    if len(shape) == 2:
        bits = []
        for size in shape:
            n = size.bit_length() - 1
            if size != 1 << n or not MIN_BITS <= n <= MAX_BITS:
                raise MultiplierError(
                    f"table file {path}: shape {shape} is not (2**n_a, 2**n_b) with widths "
                    f"{MIN_BITS}..{MAX_BITS}"
                )
            bits.append(n)
        return bits[0], bits[1]
    raise MultiplierError(f"table file {path}: array has {len(shape)} dimensions, expected 1 or 2")


def _read_text_table(path: Path) -> np.ndarray:
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = [t for t in re.split(r"[,;\s]+", line) if t]
        try:
            rows.append([int(t) for t in tokens])
        except ValueError:
            bad = next(t for t in tokens if not re.fullmatch(r"[+-]?\d+", t))
            raise MultiplierError(
                f"table file {path}, line {lineno}: {bad!r} is not an integer; CSV/text tables "
                "hold one row of integer products per operand-a value"
            ) from None
    if not rows:
        raise MultiplierError(f"table file {path}: no values found")
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise MultiplierError(
            f"table file {path}: rows have different lengths {sorted(lengths)}; expected "
            "2**n_a rows of 2**n_b integers each"
        )
    arr = np.array(rows, dtype=np.int64)
    return arr.reshape(-1) if 1 in arr.shape else arr


def load_table_file(
    path: str | os.PathLike[str],
    dtype: str | None = None,
    operands: Operands | None = None,
    name: str | None = None,
) -> Multiplier:
    """Multiplier from a table file: `.npy`, `.csv`/`.txt` (2**n_a rows of 2**n_b integers), or
    raw binary (anything else) in `dtype` (default uint16 LE, int16 LE for signed operands).

    Widths come from `operands` when given, else from the file's shape or size (square tables);
    operands are unsigned unless `operands` says otherwise.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise MultiplierError(f"table file {p} does not exist or is not a file")
    suffix = p.suffix.lower()
    stated = None
    if suffix == ".npy":
        if dtype is not None:
            raise MultiplierError(
                f"table file {p}: a dtype ({dtype!r}) applies only to raw binary tables; "
                ".npy files carry their own dtype"
            )
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise MultiplierError(f"table file {p}: not a readable .npy array ({exc})") from None
        if arr.dtype.kind not in "iu":
            raise MultiplierError(
                f"table file {p}: array dtype is {arr.dtype}, expected an integer dtype"
            )
    elif suffix in (".csv", ".txt", ".tsv"):
        if dtype is not None:
            raise MultiplierError(
                f"table file {p}: a dtype ({dtype!r}) applies only to raw binary tables"
            )
        arr = _read_text_table(p)
    else:
        signed = operands is not None and (operands.a_signed or operands.b_signed)
        stated = (
            parse_dtype(dtype, f"table file {p}") if dtype else np.dtype("<i2" if signed else "<u2")
        )
        raw = p.read_bytes()
        if len(raw) % stated.itemsize:
            raise MultiplierError(
                f"table file {p}: {len(raw)} bytes is not a whole number of {stated} entries "
                f"({stated.itemsize} bytes each); check the dtype"
            )
        arr = np.frombuffer(raw, dtype=stated)
    if operands is None:
        a_bits, b_bits = _widths_from_shape(arr.shape, p)
        operands = Operands(a_bits, b_bits)
    expected = 1 << (operands.a_bits + operands.b_bits)
    shape_ok = arr.ndim == 1 or arr.shape == (1 << operands.a_bits, 1 << operands.b_bits)
    if arr.size != expected or not shape_ok:
        raise MultiplierError(
            f"table file {p}: {arr.size} entries (shape {arr.shape}) do not fit "
            f"{operands.tag} operands, which need {1 << operands.a_bits}x{1 << operands.b_bits} = "
            f"{expected}" + (f" entries of {stated}" if stated is not None else " entries")
        )
    provenance = {"kind": "lut", "path": str(p.resolve()), "sha256": _sha256_file(p)}
    if stated is not None:
        provenance["dtype"] = stated.str
    return Multiplier.from_array(
        arr, name=name or p.stem, provenance=provenance, **operands.as_kwargs()
    )


# ---- C models -------------------------------------------------------------------------------

_C_KEYWORDS = {"if", "while", "for", "switch", "return", "sizeof", "else", "do"}
_FUNC_RE = re.compile(
    r"(?P<ret>[A-Za-z_][\w\s\*]*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*\((?P<args>[^()]*)\)\s*\{"
)
_INT_TYPES: dict[str, tuple[int, bool]] = {
    "uint8_t": (8, False), "int8_t": (8, True), "uint16_t": (16, False), "int16_t": (16, True),
    "uint32_t": (32, False), "int32_t": (32, True), "uint64_t": (64, False),
    "int64_t": (64, True), "unsigned char": (8, False), "signed char": (8, True),
    "char": (8, True), "short": (16, True), "unsigned short": (16, False), "int": (32, True),
    "unsigned": (32, False), "unsigned int": (32, False), "long": (64, True),
    "unsigned long": (64, False), "long long": (64, True), "unsigned long long": (64, False),
    "signed": (32, True), "signed int": (32, True), "short int": (16, True),
    "unsigned short int": (16, False), "long int": (64, True), "unsigned long int": (64, False),
}  # fmt: skip


@dataclass(frozen=True)
class CFunction:
    """A function definition found in a C source: name, return type and parameter types."""

    name: str
    ret: str
    params: tuple[str, ...]

    @property
    def signature(self) -> str:
        """The signature as C text."""
        return f"{self.ret} {self.name}({', '.join(self.params)})"


def _strip_comments(src: str) -> str:
    """Source without comments and preprocessor lines (which the function regex must not see)."""
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    src = re.sub(r"//[^\n]*", " ", src)
    return re.sub(r"^[ \t]*#[^\n]*(\\\n[^\n]*)*", " ", src, flags=re.M)


def _norm_type(text: str) -> str:
    words = [w for w in re.split(r"\s+", text.replace("*", " * ").strip()) if w]
    words = [
        w
        for w in words
        if w
        not in (
            "const",
            "volatile",
            "static",
            "inline",
            "extern",
            "register",
            "__inline",
            "__inline__",
        )
    ]
    return " ".join(words)


def _param_type(param: str) -> str:
    """Type of one parameter declaration (`const uint8_t A` -> `uint8_t`)."""
    norm = _norm_type(param)
    words = norm.split(" ")
    if len(words) > 1 and re.fullmatch(r"[A-Za-z_]\w*", words[-1]) and words[-1] != "*":
        if " ".join(words) not in _INT_TYPES:  # `unsigned int` alone is a type, not `int` named
            words = words[:-1]
    return " ".join(words)


def find_c_functions(source: str) -> list[CFunction]:
    """Function definitions in C source text (comments removed; control statements skipped)."""
    found = []
    for m in _FUNC_RE.finditer(_strip_comments(source)):
        name = m.group("name")
        ret = _norm_type(m.group("ret").split(";")[-1].split("}")[-1])
        if name in _C_KEYWORDS or not ret or ret.split(" ")[-1] in _C_KEYWORDS:
            continue
        args = m.group("args").strip()
        params = () if args in ("", "void") else tuple(_param_type(a) for a in args.split(","))
        found.append(CFunction(name, ret, params))
    return found


def _is_multiplier_signature(f: CFunction) -> bool:
    return len(f.params) == 2 and f.ret in _INT_TYPES and all(p in _INT_TYPES for p in f.params)


def pick_c_function(functions: list[CFunction], func: str | None, path: Path) -> CFunction:
    """The function to tabulate: `func` if given (checked), else the only two-integer-operand
    function (names starting with `mul` preferred)."""
    listing = ", ".join(f.signature for f in functions) or "none"
    if func is not None:
        named = [f for f in functions if f.name == func]
        if not named:
            raise MultiplierError(
                f"C model {path}: no function named {func!r}; functions found: {listing}"
            )
        if not _is_multiplier_signature(named[0]):
            raise MultiplierError(
                f"C model {path}: {named[0].signature} has the wrong signature; expected an "
                "integer function of two integer operands, e.g. uint16_t f(uint8_t A, uint8_t B)"
            )
        return named[0]
    cands = [f for f in functions if _is_multiplier_signature(f)]
    if len(cands) > 1:
        cands = [f for f in cands if f.name.lower().startswith("mul")] or cands
    if not cands:
        raise MultiplierError(
            f"C model {path}: no function of two integer operands returning an integer (e.g. "
            f"uint16_t mul8u_XXX(uint8_t A, uint8_t B)); functions found: {listing}"
        )
    if len(cands) > 1:
        names = ", ".join(f.name for f in cands)
        raise MultiplierError(
            f"C model {path}: several candidate functions ({names}); name one as c:{path}:NAME"
        )
    return cands[0]


def _c_operands(f: CFunction, operands: Operands | None, path: Path) -> Operands:
    (abits, asig), (bbits, bsig) = _INT_TYPES[f.params[0]], _INT_TYPES[f.params[1]]
    if operands is None:
        operands = Operands(min(abits, MAX_BITS), min(bbits, MAX_BITS), asig, bsig)
    for label, (bits, signed), ctype, (ob, os_) in (
        ("a", (abits, asig), f.params[0], (operands.a_bits, operands.a_signed)),
        ("b", (bbits, bsig), f.params[1], (operands.b_bits, operands.b_signed)),
    ):
        lo, hi = operand_range(ob, os_)
        clo, chi = operand_range(bits, signed) if bits <= 62 else (-(2**63), 2**63 - 1)
        if lo < clo or hi > chi:
            raise MultiplierError(
                f"C model {path}: operand {label} is {'s' if os_ else 'u'}{ob} ({lo}..{hi}) but "
                f"{f.name} takes {ctype} ({clo}..{chi}); use a suffix that fits the C type"
            )
    return operands


def tabulate_c_function(path: Path, f: CFunction, ops: Operands) -> np.ndarray:
    """Compile `path` into a small standalone program and run it in a child process with a time
    limit (see `axdnn.arith.csandbox`); returns int64 values of shape (2**a_bits, 2**b_bits)."""
    return csandbox.tabulate_in_child(
        path, f.name, (f.params[0], f.params[1]), ops.a_bits, ops.b_bits, ops.a_signed,
        ops.b_signed, ops.tag,
    )  # fmt: skip


def load_c_model(
    path: str | os.PathLike[str],
    func: str | None = None,
    operands: Operands | None = None,
    name: str | None = None,
) -> Multiplier:
    """Multiplier from a C function of two integer operands (EvoApprox convention, e.g.
    `uint16_t mul8u_XXX(uint8_t A, uint8_t B)`), compiled with $CC (default `cc`) and
    tabulated in a child process with a time limit (`csandbox.TIME_LIMIT_S`).

    Operand signedness and width default to the parameter types (8 bits at most); `operands`
    may narrow them, as long as its values fit the C types.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise MultiplierError(f"C model {p} does not exist or is not a file")
    try:
        source = p.read_text()
    except UnicodeDecodeError as exc:
        raise MultiplierError(
            f"C model {p}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    f = pick_c_function(find_c_functions(source), func, p)
    ops = _c_operands(f, operands, p)
    values = tabulate_c_function(p, f, ops)
    provenance = {
        "kind": "c",
        "path": str(p.resolve()),
        "function": f.name,
        "signature": f.signature,
        "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
    }
    return Multiplier.from_array(values, name=name or f.name, provenance=provenance,
                                 **ops.as_kwargs())  # fmt: skip
