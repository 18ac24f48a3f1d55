import os
import pickle

import numpy as np
import pytest
import torch

from axdnn.data import load_dataset
from axdnn.data.bundle import stratified_split
from axdnn.data.safe_pickle import load_array_pickle
from axdnn.errors import DataError


def dump(path, obj, protocol=2):
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=protocol)


def batch(rng, n, classes, label_key=b"labels"):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    return {b"batch_label": b"x", b"data": data, label_key: [i % classes for i in range(n)]}


def make_cifar10(folder, per_batch=20, str_keys=False):
    """Five train batches of `per_batch` images and a test batch, Python-2 style (bytes keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    batches = []
    for i in range(1, 6):
        b = batch(rng, per_batch, 10)
        batches.append(b)
        if str_keys:
            b = {k.decode(): v for k, v in b.items()}
        dump(folder / f"data_batch_{i}", b)
    test = batch(rng, 10, 10)
    dump(folder / "test_batch", test)
    dump(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    return batches, test


def make_cifar100(folder):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    train = batch(rng, 100, 20, b"fine_labels")
    test = batch(rng, 20, 20, b"fine_labels")
    dump(folder / "train", train, protocol=5)
    dump(folder / "test", test, protocol=5)
    dump(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)]}, protocol=5)
    return train, test


def images(bundle, name):
    x, y = getattr(bundle, name).tensors
    mean = torch.tensor(bundle.mean).view(1, 3, 1, 1)
    std = torch.tensor(bundle.std).view(1, 3, 1, 1)
    return ((x * std + mean) * 255).round().to(torch.uint8), y


@pytest.mark.parametrize("parent", [False, True])
def test_cifar10(tmp_path, parent):
    folder = tmp_path / "cifar-10-batches-py" if parent else tmp_path
    batches, test = make_cifar10(folder)
    bundle = load_dataset(f"cifar10:{tmp_path}")
    assert bundle.input_shape == (3, 32, 32) and bundle.num_classes == 10
    assert bundle.class_names == [f"c{i}" for i in range(10)]
    assert [len(bundle.train), len(bundle.val), len(bundle.test)] == [90, 10, 10]
    x, y = images(bundle, "test")
    # rows are 1024 red, then 1024 green, then 1024 blue values, each plane row-major
    assert torch.equal(x, torch.tensor(test[b"data"]).reshape(10, 3, 32, 32))
    assert y.tolist() == test[b"labels"]
    data = np.concatenate([b[b"data"] for b in batches])
    labels = np.concatenate([b[b"labels"] for b in batches])
    train_idx, _ = stratified_split(labels, (0.9, 0.1))
    x, y = images(bundle, "train")
    assert torch.equal(x, torch.tensor(data[train_idx]).reshape(-1, 3, 32, 32))
    assert y.tolist() == labels[train_idx].tolist()
    assert torch.allclose(bundle.train.tensors[0].mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)


def test_cifar10_str_keys_and_resize(tmp_path):
    make_cifar10(tmp_path, str_keys=True)
    bundle = load_dataset(f"cifar10:{tmp_path}:1x16x16")
    assert bundle.input_shape == (1, 16, 16) and len(bundle.mean) == 1


def test_cifar100(tmp_path):
    train, test = make_cifar100(tmp_path / "cifar-100-python")
    bundle = load_dataset(f"cifar100:{tmp_path}")
    assert bundle.num_classes == 100 and bundle.class_names[99] == "f99"
    assert [len(bundle.train), len(bundle.val), len(bundle.test)] == [80, 20, 20]
    x, y = images(bundle, "test")
    assert torch.equal(x, torch.tensor(test[b"data"]).reshape(20, 3, 32, 32))
    assert y.tolist() == test[b"fine_labels"]


class Exploit:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_refuses_code_in_pickles(tmp_path):
    make_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    dump(tmp_path / "data_batch_3", {b"data": Exploit(str(marker)), b"labels": []})
    with pytest.raises(DataError, match=r"refusing to unpickle (posix|nt|os)\.mkdir") as err:
        load_dataset(f"cifar10:{tmp_path}")
    assert "data_batch_3" in str(err.value)
    assert not marker.exists()


def test_restricted_unpickler_loads_arrays_of_every_protocol(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        dump(tmp_path / "p", {b"a": array, "b": [1, np.int64(2)]}, protocol)
        loaded = load_array_pickle(tmp_path / "p")
        assert np.array_equal(loaded[b"a"], array) and loaded["b"] == [1, 2]


def test_restricted_unpickler_loads_python2_pickles(tmp_path):
    """The published CIFAR files were written by Python 2's cPickle: byte strings, numpy.core."""
    payload = bytes(range(6))
    py2 = (
        b"\x80\x02}q\x00(U\x04dataq\x01cnumpy.core.multiarray\n_reconstruct\nq\x02"
        b"cnumpy\nndarray\nq\x03K\x00\x85U\x01b\x87Rq\x04(K\x01K\x06\x85cnumpy\ndtype\nq\x05"
        b"U\x02u1K\x00K\x01\x87Rq\x06(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        b"\x89U\x06" + payload + b"tbU\x06labelsq\x07]q\x08(K\x01K\x02eu."
    )
    (tmp_path / "p").write_bytes(py2)
    loaded = load_array_pickle(tmp_path / "p")
    assert loaded[b"data"].dtype == np.uint8 and loaded[b"data"].tolist() == list(payload)
    assert loaded[b"labels"] == [1, 2]


def test_garbage_file(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(DataError, match="test_batch: not a readable pickle file"):
        load_dataset(f"cifar10:{tmp_path}")


def test_wrong_data_shape(tmp_path):
    make_cifar10(tmp_path)
    dump(tmp_path / "data_batch_2", {b"data": np.zeros((4, 3000), np.uint8), b"labels": [0] * 4})
    with pytest.raises(
        DataError, match=r"data_batch_2: 'data' is a uint8 array of shape \(4, 3000\)"
    ):
        load_dataset(f"cifar10:{tmp_path}")


def test_wrong_data_dtype(tmp_path):
    make_cifar10(tmp_path)
    dump(tmp_path / "data_batch_2", {b"data": np.zeros((4, 3072)), b"labels": [0] * 4})
    with pytest.raises(DataError, match="float64 array"):
        load_dataset(f"cifar10:{tmp_path}")


def test_label_count_mismatch(tmp_path):
    make_cifar10(tmp_path)
    dump(tmp_path / "test_batch", {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 3})
    with pytest.raises(DataError, match="test_batch: 4 images but 'labels' holds 3"):
        load_dataset(f"cifar10:{tmp_path}")


def test_missing_label_key(tmp_path):
    make_cifar100(tmp_path)
    dump(tmp_path / "test", {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 4})
    with pytest.raises(DataError, match="expected a dict with key 'fine_labels'"):
        load_dataset(f"cifar100:{tmp_path}")


def test_label_out_of_range(tmp_path):
    make_cifar10(tmp_path)
    dump(tmp_path / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    with pytest.raises(DataError, match="labels range 0..10, expected 0..9"):
        load_dataset(f"cifar10:{tmp_path}")


def test_missing_batch(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(DataError, match="missing CIFAR batch file .*data_batch_4"):
        load_dataset(f"cifar10:{tmp_path}")


def test_missing_meta(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "batches.meta").unlink()
    with pytest.raises(DataError, match="missing CIFAR metadata file .*batches.meta"):
        load_dataset(f"cifar10:{tmp_path}")


def test_no_cifar_files(tmp_path):
    with pytest.raises(DataError, match="no CIFAR files") as err:
        load_dataset(f"cifar100:{tmp_path}")
    assert "cifar-100-python" in str(err.value)
