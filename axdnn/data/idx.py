"""MNIST-format IDX files (LeCun et al., http://yann.lecun.com/exdb/mnist/): big-endian magic
2051 for images (N x rows x cols uint8) and 2049 for labels (N uint8), raw or gzipped."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from axdnn.data.bundle import DatasetBundle, build_bundle, split_off
from axdnn.data.paths import find_file, require_dir
from axdnn.data.spec import DataSpec
from axdnn.errors import DataError

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_VAL_FRACTION = 0.1


def _candidates(name: str) -> tuple[str, ...]:
    """`name`, its `.gz`, and the dotted variant (`train-images.idx3-ubyte`) some mirrors use."""
    dotted = name.replace("-idx", ".idx")
    return (name, name + ".gz", dotted, dotted + ".gz")


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc})") from exc


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one unsigned-byte IDX file, checking its magic number, dims and exact length."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file, {len(data)} bytes is shorter than the header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(
            f"{path}: wrong IDX magic number {found}, expected {magic} "
            f"({'images' if magic == IMAGE_MAGIC else 'labels'})"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path}: truncated IDX file, {len(data)} bytes but the header "
            f"declares {ndim} dims and needs {header}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    payload = int(np.prod(dims, dtype=np.int64))
    if len(data) != header + payload:
        kind = "truncated IDX file" if len(data) < header + payload else "IDX file too long"
        raise DataError(
            f"{path}: {kind}: {len(data)} bytes, but dims {list(dims)} need {header + payload}"
        )
    return np.frombuffer(data, dtype=np.uint8, count=payload, offset=header).reshape(dims)


def _read_pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    image_name, label_name = MNIST_FILES[split]
    image_path = find_file(folder, _candidates(image_name), f"MNIST-format {split} images")
    label_path = find_file(folder, _candidates(label_name), f"MNIST-format {split} labels")
    images = read_idx(image_path, IMAGE_MAGIC)
    labels = read_idx(label_path, LABEL_MAGIC)
    if len(images) != len(labels):
        raise DataError(
            f"{image_path} holds {len(images)} images but {label_path} holds "
            f"{len(labels)} labels; they must match"
        )
    if 0 in images.shape[1:]:
        raise DataError(f"{image_path}: image dims {list(images.shape[1:])} must be positive")
    return images[:, None], labels.astype(np.int64)


def _mnist_folder(root: Path) -> Path:
    """DIR itself, or the torchvision layout DIR/MNIST/raw when DIR holds no IDX files."""
    nested = root / "MNIST" / "raw"
    if not any(root.glob("train-images*")) and nested.is_dir():
        return nested
    return root


def load_mnist(spec: DataSpec, seed: int = 0) -> DatasetBundle:
    """Load `mnist:DIR[:CxHxW]`; val is a fixed stratified 10% of the training files."""
    del seed  # the split is fixed so results compare across seeds
    folder = _mnist_folder(require_dir(spec.path, spec.text))
    return load_idx_folder(folder, spec, [str(d) for d in range(10)])


def load_idx_folder(folder: Path, spec: DataSpec, class_names: list[str]) -> DatasetBundle:
    """Build a bundle from the four MNIST-named IDX files in `folder` (any MNIST-format set:
    MNIST, Fashion-MNIST, KMNIST); val is a fixed stratified 10% of the training files."""
    train_x, train_y = _read_pair(folder, "train")
    test_x, test_y = _read_pair(folder, "test")
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"IDX files in {str(folder)!r}: train images are "
            f"{list(train_x.shape[2:])} but test images {list(test_x.shape[2:])}"
        )
    train, val = split_off(train_x, train_y, (1 - MNIST_VAL_FRACTION, MNIST_VAL_FRACTION))
    return build_bundle(
        spec.text,
        {"train": train, "val": val, "test": (test_x, test_y)},
        class_names=class_names,
        scale=255.0,
        shape=spec.shape,
    )
