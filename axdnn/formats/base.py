"""The `Format` base class and the one spec-string registry: every number format axdnn knows is
named by a string such as `fxp:s8.4,round=floor`, `fp8_e4m3` or `fpec:8.4,c=2`, parsed here."""

from __future__ import annotations

import dataclasses
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from axdnn.errors import FormatError


@dataclass(frozen=True)
class Format(ABC):
    """How a tensor is represented in hardware. Subclasses are frozen dataclasses whose equality
    and hash follow their parameters; `quantize` is differentiable through a straight-through
    estimator and `bits` (storage bits per value) feeds the cost model."""

    kind: ClassVar[str] = "format"

    @property
    @abstractmethod
    def bits(self) -> int:
        """Storage bits per value."""

    @property
    @abstractmethod
    def spec(self) -> str:
        """Canonical spec string; `parse_format(f.spec) == f`."""

    @abstractmethod
    def _quantize(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Quantize a floating tensor (gradient via a straight-through estimator)."""

    def quantize(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Return `x` rounded to this format, in x's dtype; differentiable via an STE.

        `generator` drives stochastic rounding; without one, a generator seeded with the format's
        `seed` is used, so the same call gives the same result."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            got = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise FormatError(
                f"format {self.spec!r}: quantize expects a floating-point tensor, got {got}"
            )
        return self._quantize(x, generator)

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return self.quantize(x, generator=generator)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready description: kind, spec, bits and the dataclass fields."""
        return {"kind": self.kind, "spec": self.spec, "bits": self.bits, **dataclasses.asdict(self)}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Format:
        """Rebuild a format from `to_dict()` output (through its spec)."""
        if not isinstance(data, dict) or "spec" not in data:
            raise FormatError(
                f"format record {data!r} has no 'spec' key; expected Format.to_dict()"
            )
        return parse_format(str(data["spec"]))

    def __str__(self) -> str:
        return self.spec


# ---------------------------------------------------------------------------------------------
# Spec options


_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no"}


class Options:
    """The `key=value` options of one spec; typed getters, and `finish()` rejects leftovers."""

    def __init__(self, spec: str, form: str, items: dict[str, str]) -> None:
        self.spec, self.form, self._items, self._known = spec, form, dict(items), []

    def _fail(self, key: str, value: str, wanted: str) -> FormatError:
        return FormatError(
            f"format spec {self.spec!r}: option {key}={value!r} is invalid; expected {wanted} "
            f"(form: {self.form})"
        )

    def bad_arg(self, arg: str | None, what: str) -> FormatError:
        """The error for a malformed argument after the ':' of the spec head."""
        return FormatError(
            f"format spec {self.spec!r}: argument {arg!r} is invalid; expected {what} "
            f"(form: {self.form})"
        )

    def get(self, key: str) -> str | None:
        """The raw value of option `key` (None when absent); marks the key as accepted."""
        self._known.append(key)
        return self._items.pop(key, None)

    def get_int(self, key: str, default: int) -> int:
        """Option `key` as an int."""
        raw = self.get(key)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise self._fail(key, raw, "an integer") from None

    def get_float(self, key: str, default: float | None) -> float | None:
        """Option `key` as a float."""
        raw = self.get(key)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise self._fail(key, raw, "a number") from None

    def get_bool(self, key: str, default: bool) -> bool:
        """Option `key` as a bool (on/off, true/false, yes/no, 1/0)."""
        raw = self.get(key)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise self._fail(key, raw, "on/off (also true/false, yes/no, 1/0)")

    def get_str(self, key: str, default: str | None) -> str | None:
        """Option `key` as a string."""
        raw = self.get(key)
        return default if raw is None else raw

    def finish(self) -> None:
        """Raise a FormatError naming every option no getter asked for."""
        if self._items:
            bad = ", ".join(sorted(self._items))
            known = ", ".join(self._known) or "none"
            raise FormatError(
                f"format spec {self.spec!r}: unknown option(s) {bad}; accepted options: {known} "
                f"(form: {self.form})"
            )


# ---------------------------------------------------------------------------------------------
# Registry

Builder = Callable[[re.Match[str], "str | None", Options], Format]


@dataclass(frozen=True)
class _Entry:
    pattern: re.Pattern[str]
    form: str
    build: Builder


_REGISTRY: list[_Entry] = []


def register_format(name_pattern: str, form: str) -> Callable[[Builder], Builder]:
    """Register a builder for spec heads matching `name_pattern` (a full-match regex on the part
    before ':'); `form` is the human-readable accepted form listed in error messages."""

    def deco(build: Builder) -> Builder:
        _REGISTRY.append(_Entry(re.compile(name_pattern), form, build))
        return build

    return deco


def format_forms() -> list[str]:
    """Every accepted spec form, for help texts and error messages."""
    return [e.form for e in _REGISTRY]


def _accepted() -> str:
    return "accepted forms: " + "; ".join(format_forms())


def parse_format(spec: str | Format, source: str | None = None) -> Format:
    """Parse a spec string (`fxp:s8.4,round=floor`, `int8`, `float:e5m10`, `fpec:8.4,c=2`, ...)
    into a Format. `source` (file, key, layer) is named in the error when the spec is bad."""
    if isinstance(spec, Format):
        return spec
    where = f" (from {source})" if source else ""
    if not isinstance(spec, str) or not spec.strip():
        raise FormatError(f"format spec {spec!r}{where} is empty or not a string; {_accepted()}")
    text = spec.strip()
    head, *opt_parts = [p.strip() for p in text.split(",")]
    name, _, arg = head.partition(":")
    name, arg = name.strip().lower(), arg.strip() if _ else None
    items: dict[str, str] = {}
    for part in opt_parts:
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not eq or not key or key in items:
            raise FormatError(
                f"format spec {spec!r}{where}: option {part!r} is not a unique key=value pair; "
                f"{_accepted()}"
            )
        items[key] = value.strip()
    for entry in _REGISTRY:
        match = entry.pattern.fullmatch(name)
        if match is None:
            continue
        try:
            return entry.build(match, arg, Options(text, entry.form, items))
        except FormatError as exc:
            msg = str(exc)
            if repr(text) not in msg:
                msg = f"format spec {text!r}: {msg}"
            raise FormatError(f"{msg}{where}") from None
    raise FormatError(f"unknown number format {spec!r}{where}; {_accepted()}")


def with_options(base: str, options: list[tuple[str, Any, Any]]) -> str:
    """Append `key=value` for every option whose value differs from its default."""
    parts = [base]
    for key, value, default in options:
        if value != default:
            if isinstance(value, bool):
                value = "on" if value else "off"
            parts.append(f"{key}={value}")
    return ",".join(parts)
