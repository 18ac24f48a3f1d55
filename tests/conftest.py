"""Shared fixtures: the digits data and a small trained digits CNN (trained once per session; the
inject and analysis tests share it; cached in the session temp directory), and a fixed small
subset of the real Fashion-MNIST files."""

import gzip
import struct

import pytest
import torch

from axdnn.data import load_dataset
from axdnn.data.fashion import DEBIAN_DIR, INSTALL_HINT
from axdnn.data.idx import IMAGE_MAGIC, LABEL_MAGIC, MNIST_FILES, read_idx
from axdnn.models import build_model
from axdnn.train import TrainConfig, fit


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def trained_cnn(digits, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "axdnn_digits_cnn_e8_seed0.pt"
    torch.manual_seed(0)
    model = build_model("digits_cnn", 1, 10)
    if cache.exists():
        model.load_state_dict(torch.load(cache, weights_only=True))
    else:
        fit(model, digits.train, digits.val, 10, TrainConfig(epochs=8, seed=0))
        torch.save(model.state_dict(), cache)
    return model.eval()


FASHION_SUBSET = {"train": 2000, "test": 1000}
"""The first 2,000 training and 1,000 test images: real data, small enough for a fast suite."""


def _write_idx(path, array, magic):
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes(), compresslevel=1))


@pytest.fixture(scope="session")
def fashion_dir():
    """The Debian Fashion-MNIST folder; tests that need the real files skip without it (CI
    installs it: .ci/run)."""
    if not (DEBIAN_DIR / (MNIST_FILES["train"][0] + ".gz")).is_file():
        pytest.skip(f"Fashion-MNIST is not installed in {DEBIAN_DIR} ({INSTALL_HINT})")
    return DEBIAN_DIR


@pytest.fixture(scope="session")
def fashion_subset(fashion_dir, tmp_path_factory):
    """A folder holding the first FASHION_SUBSET images of each split of the real files, in the
    same gzipped IDX layout, for `fashion-mnist:DIR` specs."""
    folder = tmp_path_factory.mktemp("fashion-mnist")
    for split, (image_name, label_name) in MNIST_FILES.items():
        count = FASHION_SUBSET[split]
        images = read_idx(fashion_dir / (image_name + ".gz"), IMAGE_MAGIC)[:count]
        labels = read_idx(fashion_dir / (label_name + ".gz"), LABEL_MAGIC)[:count]
        _write_idx(folder / (image_name + ".gz"), images, IMAGE_MAGIC)
        _write_idx(folder / (label_name + ".gz"), labels, LABEL_MAGIC)
    return folder
