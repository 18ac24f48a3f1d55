"""File-system checks shared by the file-backed sources, so every missing path reads the same."""

from __future__ import annotations

from pathlib import Path

from axdnn.errors import DataError


def require_dir(path: Path, spec: str) -> Path:
    """Return `path` if it is an existing directory, else raise DataError naming the spec."""
    if not path.exists():
        raise DataError(f"dataset directory {str(path)!r} (from spec {spec!r}) does not exist")
    if not path.is_dir():
        raise DataError(f"dataset path {str(path)!r} (from spec {spec!r}) is not a directory")
    return path


def find_file(folder: Path, names: tuple[str, ...], what: str) -> Path:
    """Return the first of `names` that exists as a file in `folder`, else raise DataError."""
    for name in names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise DataError(f"missing {what} in {str(folder)!r}: expected one of {', '.join(names)}")
