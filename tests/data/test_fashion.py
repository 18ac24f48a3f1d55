"""Fashion-MNIST: spec grammar, default folders, the absent-data error, and the real files."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from axdnn.data import load_dataset, parse_spec
from axdnn.data.fashion import CLASS_NAMES, DATA_ENV, DEBIAN_DIR, default_folders
from axdnn.data.idx import IMAGE_MAGIC, LABEL_MAGIC, read_idx
from axdnn.errors import DataError


@pytest.mark.parametrize(
    "text, path, shape",
    [
        ("fashion-mnist", None, None),
        ("Fashion-MNIST", None, None),
        ("fashion-mnist:1x32x32", None, (1, 32, 32)),
        ("fashion-mnist:/data/fm", "/data/fm", None),
        ("fashion-mnist:/data/fm:3x32x32", "/data/fm", (3, 32, 32)),
    ],
)
def test_spec_forms(text, path, shape):
    spec = parse_spec(text)
    assert spec.source == "fashion-mnist"
    assert spec.path == (None if path is None else Path(path))
    assert spec.shape == shape


def test_bad_shape_is_an_error():
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        parse_spec("fashion-mnist:2x28x28")


def test_default_folder_follows_axdnn_data(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert default_folders() == [DEBIAN_DIR]
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert default_folders() == [tmp_path / "fashion-mnist"]


def test_absent_data_error_names_folders_and_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(DataError) as err:
        load_dataset("fashion-mnist")
    message = str(err.value)
    assert str(tmp_path / "fashion-mnist") in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert DATA_ENV in message and "\n" not in message


def test_absent_data_error_for_an_explicit_folder(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as err:
        load_dataset(f"fashion-mnist:{tmp_path}")
    assert str(tmp_path) in str(err.value)


def test_reads_the_folder_under_axdnn_data(monkeypatch, tmp_path, fashion_subset):
    (tmp_path / "fashion-mnist").symlink_to(fashion_subset, target_is_directory=True)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    bundle = load_dataset("fashion-mnist")
    assert len(bundle.train) + len(bundle.val) == 2000 and len(bundle.test) == 1000
    assert len(bundle.val) == pytest.approx(200, abs=5)  # 10% of each class, rounded per class


def test_subset_matches_the_real_files(fashion_subset, fashion_dir):
    bundle = load_dataset(f"fashion-mnist:{fashion_subset}")
    assert bundle.input_shape == (1, 28, 28) and bundle.num_classes == 10
    assert bundle.class_names == CLASS_NAMES
    x, y = bundle.test.tensors
    with gzip.open(fashion_dir / "t10k-labels-idx1-ubyte.gz") as f:
        real_labels = np.frombuffer(f.read()[8:], dtype=np.uint8)[:1000]
    assert y.tolist() == real_labels.tolist()
    real_images = read_idx(fashion_dir / "t10k-images-idx3-ubyte.gz", IMAGE_MAGIC)[:1000]
    restored = (x[:, 0] * bundle.std[0] + bundle.mean[0]) * 255
    assert np.abs(restored.numpy() - real_images).max() < 1e-3
    assert np.bincount(y.numpy(), minlength=10).min() > 50  # every class is present


def test_full_default_set(monkeypatch, fashion_dir):
    monkeypatch.delenv(DATA_ENV, raising=False)
    bundle = load_dataset("fashion-mnist:1x14x14")
    assert [len(bundle.train), len(bundle.val), len(bundle.test)] == [54000, 6000, 10000]
    assert bundle.input_shape == (1, 14, 14)
    train_labels = read_idx(fashion_dir / "train-labels-idx1-ubyte.gz", LABEL_MAGIC)
    assert np.bincount(train_labels).tolist() == [6000] * 10  # Xiao et al.: balanced classes
    # Xiao et al. 2017 / torchvision's normalisation constants: mean 0.2860, std 0.3530
    assert bundle.mean[0] == pytest.approx(0.2860, abs=2e-3)
