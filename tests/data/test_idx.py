import gzip
import struct

import numpy as np
import pytest
import torch

from axdnn.data import load_dataset
from axdnn.data.bundle import stratified_split
from axdnn.data.idx import read_idx
from axdnn.errors import DataError

ROWS, COLS = 4, 5  # non-square, so rows and cols cannot be swapped unnoticed


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write(path, data: bytes, gz: bool):
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_mnist(folder, gz=False, n_train=100, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, ROWS, COLS), dtype=np.uint8)
        labels = np.arange(n) % 10
        write(folder / f"{split}-images-idx3-ubyte", idx_bytes(images, 2051), gz)
        write(folder / f"{split}-labels-idx1-ubyte", idx_bytes(labels, 2049), gz)
        arrays[split] = (images, labels)
    return arrays


def restore(bundle, name):
    x, y = getattr(bundle, name).tensors
    return (x * bundle.std[0] + bundle.mean[0]) * 255, y


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist(tmp_path, gz):
    arrays = make_mnist(tmp_path, gz=gz)
    bundle = load_dataset(f"mnist:{tmp_path}")
    assert bundle.input_shape == (1, ROWS, COLS) and bundle.num_classes == 10
    assert [len(bundle.train), len(bundle.val), len(bundle.test)] == [90, 10, 20]
    x, y = restore(bundle, "test")
    torch.testing.assert_close(
        x[:, 0], torch.tensor(arrays["t10k"][0], dtype=torch.float32), atol=1e-3, rtol=0
    )
    assert y.tolist() == arrays["t10k"][1].tolist()
    _, val_idx = stratified_split(arrays["train"][1], (0.9, 0.1))
    x, y = restore(bundle, "val")
    torch.testing.assert_close(
        x[:, 0], torch.tensor(arrays["train"][0][val_idx], dtype=torch.float32), atol=1e-3, rtol=0
    )
    assert sorted(y.tolist()) == list(range(10))  # one of the ten images of each class
    assert abs(float(bundle.train.tensors[0].mean())) < 1e-4


def test_mnist_resize_and_torchvision_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    make_mnist(raw, gz=True)
    bundle = load_dataset(f"mnist:{tmp_path}:3x8x8")
    assert bundle.input_shape == (3, 8, 8) and bundle.test.tensors[0].shape == (20, 3, 8, 8)


def test_dotted_file_names(tmp_path):
    make_mnist(tmp_path)
    for path in tmp_path.iterdir():
        path.rename(path.with_name(path.name.replace("-idx", ".idx")))
    assert len(load_dataset(f"mnist:{tmp_path}").test) == 20


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        load_dataset(f"mnist:{tmp_path / 'nope'}")
    assert "nope" in str(err.value)


def test_path_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        load_dataset(f"mnist:{tmp_path / 'f'}")


def test_missing_file(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="missing MNIST-format test labels") as err:
        load_dataset(f"mnist:{tmp_path}")
    assert "t10k-labels-idx1-ubyte.gz" in str(err.value)


@pytest.mark.parametrize("gz", [False, True])
def test_wrong_magic(tmp_path, gz):
    make_mnist(tmp_path, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((3, 4, 5)), 2049), gz)
    with pytest.raises(DataError, match="wrong IDX magic number 2049, expected 2051") as err:
        load_dataset(f"mnist:{tmp_path}")
    assert name in str(err.value)


@pytest.mark.parametrize("cut", [2, 10, 1])  # inside magic, inside dims, inside payload
@pytest.mark.parametrize("gz", [False, True])
def test_truncated(tmp_path, cut, gz):
    data = idx_bytes(np.zeros((3, 4, 5)), 2051)
    keep = {2: 2, 10: 10, 1: len(data) - 1}[cut]
    path = write(tmp_path / "x-idx3-ubyte", data[:keep], gz)
    with pytest.raises(DataError, match="truncated IDX file") as err:
        read_idx(path, 2051)
    assert str(path) in str(err.value)


def test_trailing_bytes(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(np.zeros((3,)), 2049) + b"\0")
    with pytest.raises(DataError, match="too long"):
        read_idx(path, 2049)


def test_corrupt_gzip(tmp_path):
    make_mnist(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:15])
    with pytest.raises(DataError, match="not a valid gzip file") as err:
        load_dataset(f"mnist:{tmp_path}")
    assert "train-labels-idx1-ubyte.gz" in str(err.value)


def test_count_mismatch(tmp_path):
    make_mnist(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.zeros(99), 2049), False)
    with pytest.raises(DataError, match="100 images but .* 99 labels"):
        load_dataset(f"mnist:{tmp_path}")


def test_label_out_of_range(tmp_path):
    make_mnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.full(20, 12), 2049), False)
    with pytest.raises(DataError, match="labels range 12..12, expected 0..9"):
        load_dataset(f"mnist:{tmp_path}")


def test_train_test_dims_differ(tmp_path):
    make_mnist(tmp_path)
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(np.zeros((20, 5, 5)), 2051), False)
    with pytest.raises(DataError, match=r"train images are \[4, 5\] but test images \[5, 5\]"):
        load_dataset(f"mnist:{tmp_path}")
