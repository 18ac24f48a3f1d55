"""CIFAR-10 and CIFAR-100 in their python pickle layout (Krizhevsky 2009, "Learning Multiple
Layers of Features from Tiny Images"): rows of 3072 uint8 values, 1024 per R, G, B plane."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from axdnn.data.bundle import DatasetBundle, build_bundle, split_off
from axdnn.data.paths import require_dir
from axdnn.data.safe_pickle import load_array_pickle
from axdnn.data.spec import DataSpec
from axdnn.errors import DataError

CIFAR_VAL_FRACTION = 0.1
ROW = 3 * 32 * 32


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps its files and under which keys."""

    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    names_key: str
    classes: int


LAYOUTS = {
    "cifar10": CifarLayout(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "batches.meta",
        "labels",
        "label_names",
        10,
    ),
    "cifar100": CifarLayout(
        "cifar-100-python", ("train",), ("test",), "meta", "fine_labels", "fine_label_names", 100
    ),
}


def _field(obj: object, key: str, path: Path) -> object:
    """Look up `key` in an unpickled dict, whether pickled with bytes (Python 2) or str keys."""
    if isinstance(obj, dict):
        for k in (key.encode(), key):
            if k in obj:
                return obj[k]
    raise DataError(
        f"{path}: expected a dict with key {key!r}, got "
        f"{sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__}"
    )


def _resolve(root: Path, layout: CifarLayout, spec: str) -> Path:
    """DIR holding the batches, or its parent holding `layout.folder`."""
    for folder in (root / layout.folder, root):
        if (folder / layout.train[0]).is_file():
            return folder
    raise DataError(
        f"no CIFAR files for spec {spec!r}: expected {', '.join(layout.train)} in "
        f"{str(root)!r} or in {str(root / layout.folder)!r}"
    )


def read_batch(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file into (N x 3 x 32 x 32 uint8 images, N int64 labels)."""
    if not path.is_file():
        raise DataError(f"missing CIFAR batch file {str(path)!r}")
    batch = load_array_pickle(path)
    data = _field(batch, "data", path)
    labels = np.asarray(_field(batch, layout.label_key, path))
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != ROW
    ):
        desc = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DataError(f"{path}: 'data' is a {desc}, expected an N x {ROW} uint8 array")
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: {len(data)} images but {layout.label_key!r} holds {labels.size} values "
            f"of type {labels.dtype}; expected {len(data)} integers"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_split(folder: Path, names: tuple[str, ...], layout: CifarLayout):
    parts = [read_batch(folder / name, layout) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _class_names(folder: Path, layout: CifarLayout) -> list[str]:
    path = folder / layout.meta
    if not path.is_file():
        raise DataError(f"missing CIFAR metadata file {str(path)!r}")
    names = _field(load_array_pickle(path), layout.names_key, path)
    if not isinstance(names, list) or len(names) != layout.classes:
        raise DataError(f"{path}: {layout.names_key!r} should list {layout.classes} class names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def load_cifar(spec: DataSpec, seed: int = 0) -> DatasetBundle:
    """Load `cifar10:DIR` or `cifar100:DIR`; val is a fixed stratified 10% of the train files."""
    del seed  # the split is fixed so results compare across seeds
    layout = LAYOUTS[spec.source]
    folder = _resolve(require_dir(spec.path, spec.text), layout, spec.text)
    train_x, train_y = _read_split(folder, layout.train, layout)
    test = _read_split(folder, layout.test, layout)
    train, val = split_off(train_x, train_y, (1 - CIFAR_VAL_FRACTION, CIFAR_VAL_FRACTION))
    return build_bundle(
        spec.text,
        {"train": train, "val": val, "test": test},
        class_names=_class_names(folder, layout),
        scale=255.0,
        shape=spec.shape,
    )
