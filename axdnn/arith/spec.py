"""Multiplier spec strings: the one parser and the one registry.

Grammar: `NAME[:ARG][@OPERANDS]`, e.g. `exact`, `trunc:6`, `bam:2,6@s8`, `drum:4@u4`,
`lut:tables/m.bin:u16@u8`, `lut:m.bin?dtype=i16@s8`, `c:mul.c:mul8u_ABC`. OPERANDS is `u8`, `s6`
(both operands) or `u8xs8` / `u8x4` (a then b; a missing sign letter repeats a's). Built-in models
default to `@u8`; `lut:` infers widths from the file and `c:` from the function's parameter types.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from axdnn.arith.importers import is_dtype_name, load_c_model, load_table_file, parse_dtype
from axdnn.arith.models import MODELS, build_model
from axdnn.arith.multiplier import MAX_BITS, MIN_BITS, Multiplier, Operands
from axdnn.errors import MultiplierError

Factory = Callable[[str | None, Operands | None], Multiplier]
"""A registered factory gets the text after `NAME:` (None if absent) and the suffix's operands
(None if the spec has no `@` suffix) and returns a Multiplier."""

DEFAULT_OPERANDS = Operands(8, 8, False, False)
_SUFFIX_RE = re.compile(r"@([us])(\d+)(?:x([us])?(\d+))?$")
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class ParsedSpec:
    """A spec split into registry name, argument text (None if absent) and operands (None if no
    suffix)."""

    name: str
    arg: str | None
    operands: Operands | None


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    source_path: Callable[[str | None], Path | None] | None


_REGISTRY: dict[str, _Entry] = {}
_CACHE: dict[str, tuple[object, Multiplier]] = {}


def _parse_operands(spec: str, m: re.Match[str]) -> Operands:
    a_sign, a_bits, b_sign, b_bits = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    b_sign = b_sign or a_sign
    b_bits = int(b_bits) if b_bits is not None else a_bits
    for bits in (a_bits, b_bits):
        if not MIN_BITS <= bits <= MAX_BITS:
            raise MultiplierError(
                f"multiplier spec {spec!r}: operand width {bits} is out of range; "
                f"accepted {MIN_BITS}..{MAX_BITS} (e.g. @u8, @s4, @u8xs8)"
            )
    return Operands(a_bits, b_bits, a_sign == "s", b_sign == "s")


def parse_spec(spec: str) -> ParsedSpec:
    """Split a spec string into name, argument and operands (no registry lookup)."""
    if not isinstance(spec, str) or not spec.strip():
        raise MultiplierError(
            f"multiplier spec {spec!r} is empty or not a string; expected e.g. 'exact', "
            "'drum:4@u8' or 'lut:table.bin'"
        )
    text = spec.strip()
    operands = None
    m = _SUFFIX_RE.search(text)
    if m:
        operands = _parse_operands(spec, m)
        text = text[: m.start()]
    name, sep, arg = text.partition(":")
    name = name.strip().lower()
    if "@" in name or (operands is None and "@" in text and name not in ("lut", "c")):
        raise MultiplierError(
            f"multiplier spec {spec!r}: bad operand suffix {text[text.index('@') :]!r}; "
            "accepted @u8, @s8, @u4, @u8xs8, ... (widths 2..8)"
        )
    return ParsedSpec(name, arg.strip() if sep else None, operands)


def register_multiplier(
    name: str,
    factory: Factory,
    *,
    source_path: Callable[[str | None], Path | None] | None = None,
    replace: bool = False,
) -> None:
    """Add a spec name. `source_path(arg)` names the file a spec reads, so cached results are
    refreshed when that file changes."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise MultiplierError(
            f"multiplier name {name!r} is invalid; use lowercase letters, digits and '_', "
            "starting with a letter"
        )
    if name in _REGISTRY and not replace:
        raise MultiplierError(
            f"multiplier name {name!r} is already registered; pass replace=True to override it"
        )
    _REGISTRY[name] = _Entry(factory, source_path)
    _CACHE.clear()


def list_multipliers() -> list[str]:
    """Registered spec names, sorted."""
    return sorted(_REGISTRY)


def _stamp(entry: _Entry, arg: str | None) -> object:
    if entry.source_path is None:
        return None
    path = entry.source_path(arg)
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return "missing"
    return None if st is None else (str(path.resolve()), st.st_mtime_ns, st.st_size)


def get_multiplier(spec: str | Multiplier) -> Multiplier:
    """The Multiplier a spec names (cached by spec; file-based specs re-read changed files).
    A Multiplier passes through unchanged."""
    if isinstance(spec, Multiplier):
        return spec
    parsed = parse_spec(spec)
    entry = _REGISTRY.get(parsed.name)
    if entry is None:
        raise MultiplierError(
            f"unknown multiplier {parsed.name!r} in spec {spec!r}; known: "
            f"{', '.join(list_multipliers())}"
        )
    key = spec.strip()
    stamp = _stamp(entry, parsed.arg)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == stamp and stamp != "missing":
        return hit[1]
    m = entry.factory(parsed.arg, parsed.operands)
    if not isinstance(m, Multiplier):
        raise MultiplierError(
            f"multiplier factory for {parsed.name!r} returned {type(m).__name__}, not a Multiplier"
        )
    if parsed.operands is not None and m.operands != parsed.operands:
        raise MultiplierError(
            f"multiplier spec {spec!r}: the factory built {m.operand_tags} operands, "
            f"but the spec asks for {parsed.operands.tag}"
        )
    _CACHE[key] = (stamp, m)
    return m


# ---- built-in factories ---------------------------------------------------------------------


def _int_params(model: str, arg: str | None) -> list[int]:
    if arg is None or arg == "":
        return []
    out = []
    for part in arg.split(","):
        try:
            out.append(int(part.strip()))
        except ValueError:
            raise MultiplierError(
                f"multiplier {model!r}: parameter {part.strip()!r} in {arg!r} is not an integer; "
                f"write e.g. '{model}:4'"
            ) from None
    return out


def _model_factory(model: str) -> Factory:
    def factory(arg: str | None, operands: Operands | None) -> Multiplier:
        return build_model(model, _int_params(model, arg), operands or DEFAULT_OPERANDS)

    factory.__doc__ = f"Built-in behavioural model {model!r} ({MODELS[model].cite})."
    return factory


def _split_query(kind: str, arg: str | None, keys: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    if not arg:
        raise MultiplierError(
            f"multiplier spec '{kind}:' needs a file path, e.g. '{kind}:path/to/file'"
        )
    path, _, query = arg.partition("?")
    opts: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if not eq or key not in keys:
            raise MultiplierError(
                f"multiplier spec '{kind}:{arg}': unknown option {item!r}; accepted "
                + ", ".join(f"{k}=..." for k in keys)
            )
        opts[key] = value
    return path, opts


def parse_lut_arg(arg: str | None) -> tuple[Path, str | None]:
    """`path[:dtype]` or `path?dtype=...` -> (path, dtype or None)."""
    path, opts = _split_query("lut", arg, ("dtype",))
    head, sep, tail = path.rpartition(":")
    if sep and head and is_dtype_name(tail):
        if "dtype" in opts:
            raise MultiplierError(f"multiplier spec 'lut:{arg}' states the dtype twice")
        path, opts["dtype"] = head, tail
    elif sep and head and re.fullmatch(r"[<>]?\w+", tail) and Path(head).is_file():
        parse_dtype(tail, f"multiplier spec 'lut:{arg}'")  # raises: names the accepted dtypes
    return Path(path), opts.get("dtype")


def parse_c_arg(arg: str | None) -> tuple[Path, str | None]:
    """`path.c[:function]` or `path.c?func=...` -> (path, function or None)."""
    path, opts = _split_query("c", arg, ("func",))
    head, sep, tail = path.rpartition(":")
    if sep and head and re.fullmatch(r"[A-Za-z_]\w*", tail):
        path, opts["func"] = head, tail
    return Path(path), opts.get("func")


def _lut_factory(arg: str | None, operands: Operands | None) -> Multiplier:
    path, dtype = parse_lut_arg(arg)
    return load_table_file(path, dtype=dtype, operands=operands)


def _c_factory(arg: str | None, operands: Operands | None) -> Multiplier:
    path, func = parse_c_arg(arg)
    return load_c_model(path, func=func, operands=operands)


def _register_builtins() -> None:
    for model in MODELS:
        register_multiplier(model, _model_factory(model), replace=True)
    register_multiplier(
        "lut", _lut_factory, source_path=lambda a: parse_lut_arg(a)[0], replace=True
    )
    register_multiplier("c", _c_factory, source_path=lambda a: parse_c_arg(a)[0], replace=True)


_register_builtins()
