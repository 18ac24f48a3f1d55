"""Dataset spec strings: one grammar and one parser, so config files, the CLI and the API name data
the same way (e.g. `digits:3x32x32`, `mnist:~/data/mnist`, `fashion-mnist`,
`synthetic:3x32x32:10:2048`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from axdnn.errors import DataError

Shape = tuple[int, int, int]

SOURCE_FORMS: dict[str, str] = {
    "digits": "digits[:CxHxW]  scikit-learn 8x8 digits, embedded; C in {1,3}, H=W in {8,16,32}",
    "mnist": "mnist:DIR[:CxHxW]  MNIST-format IDX files (raw or .gz) in DIR",
    "fashion-mnist": "fashion-mnist[:DIR][:CxHxW]  Fashion-MNIST IDX files; default DIR "
    "$AXDNN_DATA/fashion-mnist, else /usr/share/datasets/fashion-mnist (Debian's "
    "dataset-fashion-mnist)",
    "cifar10": "cifar10:DIR[:CxHxW]  CIFAR-10 python batches in DIR or DIR/cifar-10-batches-py",
    "cifar100": "cifar100:DIR[:CxHxW]  CIFAR-100 python files (fine labels) in DIR or "
    "DIR/cifar-100-python",
    "folder": "folder:DIR[:CxHxW]  one subfolder of images per class, with train/ test/ [val/] "
    "or split 80/10/10; default 3x32x32",
    "synthetic": "synthetic:CxHxW:CLASSES[:N]  seeded random images whose class is a fixed linear "
    "function of the pixels; N samples in all (default 512)",
}

_SHAPE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*$")
_SHAPE_LIKE = re.compile(r"^\s*\d+\s*([xX]\s*\d*\s*)*$")


@dataclass(frozen=True)
class DataSpec:
    """A parsed dataset spec: the source and whichever of path/shape/classes/samples it takes."""

    text: str
    source: str
    path: Path | None = None
    shape: Shape | None = None
    classes: int | None = None
    samples: int | None = None


def list_sources() -> list[str]:
    """The accepted spec forms, one line each, for error messages and CLI help."""
    return list(SOURCE_FORMS.values())


def _accepted() -> str:
    return "accepted forms:\n  " + "\n  ".join(list_sources())


def parse_shape(text: str, spec: str) -> Shape:
    """Parse `CxHxW` with C in {1, 3} and positive H, W; `spec` names where it came from."""
    match = _SHAPE.match(text)
    if match is None:
        raise DataError(
            f"bad shape {text!r} in dataset spec {spec!r}: expected CxHxW such as 3x32x32 "
            "(C in {1,3}, H and W positive integers)"
        )
    c, h, w = (int(g) for g in match.groups())
    if c not in (1, 3) or h < 1 or w < 1:
        raise DataError(
            f"bad shape {text!r} in dataset spec {spec!r}: channels must be 1 or 3 and "
            f"H, W at least 1, got C={c} H={h} W={w}"
        )
    return (c, h, w)


def _positive_int(text: str, what: str, spec: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise DataError(
            f"bad {what} {text!r} in dataset spec {spec!r}: expected an integer >= {minimum}; "
            + SOURCE_FORMS["synthetic"]
        )
    return value


def _split_dir_shape(rest: str, spec: str) -> tuple[str, Shape | None]:
    """Split `DIR[:CxHxW]`; a trailing part made of digits and x's is read as a shape."""
    head, sep, tail = rest.rpartition(":")
    if sep and _SHAPE_LIKE.match(tail):
        return head, parse_shape(tail, spec)
    return rest, None


def _parse_synthetic(text: str, rest: str) -> DataSpec:
    parts = rest.split(":") if rest else []
    if len(parts) not in (2, 3):
        form = SOURCE_FORMS["synthetic"]
        raise DataError(f"bad synthetic dataset spec {text!r}: expected {form}")
    shape = parse_shape(parts[0], text)
    classes = _positive_int(parts[1], "class count", text, 2)
    samples = _positive_int(parts[2], "sample count", text, 1) if len(parts) == 3 else None
    return DataSpec(text, "synthetic", shape=shape, classes=classes, samples=samples)


def parse_spec(spec: str) -> DataSpec:
    """Parse a dataset spec string into a DataSpec; anything malformed raises DataError."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"empty dataset spec {spec!r}; {_accepted()}")
    text = spec.strip()
    source, _, rest = text.partition(":")
    source = source.strip().lower()
    if source not in SOURCE_FORMS:
        raise DataError(f"unknown dataset source {source!r} in spec {text!r}; {_accepted()}")
    if source == "digits":
        return DataSpec(text, source, shape=parse_shape(rest, text) if rest.strip() else None)
    if source == "synthetic":
        return _parse_synthetic(text, rest)
    if source == "fashion-mnist" and (not rest.strip() or _SHAPE_LIKE.match(rest)):
        # no directory: the loader looks in the default folders
        return DataSpec(text, source, shape=parse_shape(rest, text) if rest.strip() else None)
    path, shape = _split_dir_shape(rest, text)
    if not path.strip():
        form = SOURCE_FORMS[source]
        raise DataError(f"dataset spec {text!r} names no directory; expected {form}")
    return DataSpec(text, source, path=Path(path.strip()).expanduser(), shape=shape)
