"""YAML loading that remembers where each key stands, so a schema error can name the file and
line of the bad value instead of only its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from axdnn.errors import ConfigError

Path_ = tuple[str | int, ...]


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            _walk(value, child, lines)
            lines[child] = key.start_mark.line + 1  # the key's own line reads best
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[Path_, int]]:
    """(data, {key path: 1-based line}) of a YAML file; malformed YAML raises ConfigError."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read experiment file {str(path)!r}: {exc.strerror}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from exc
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def line_of(lines: dict[Path_, int], loc: Path_) -> int | None:
    """The line of the longest prefix of `loc` that the file spells out (pydantic inserts
    union tags into locations; those parts are skipped)."""
    best, path = None, ()
    for part in loc:
        candidate = (*path, part)
        if candidate in lines:
            path, best = candidate, lines[candidate]
    return best if best is not None else lines.get(())
