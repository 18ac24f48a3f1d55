import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from axdnn.data import load_dataset
from axdnn.errors import DataError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _all_images(bundle):
    return torch.cat([getattr(bundle, s).tensors[0] for s in ("train", "val", "test")])


def test_metadata_and_split_sizes(digits):
    sizes = {s: len(getattr(digits, s)) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 1797
    for name, fraction in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        assert abs(sizes[name] - fraction * 1797) <= 10  # at most one sample per class off
    assert digits.num_classes == 10 and digits.class_names == [str(d) for d in range(10)]
    assert digits.input_shape == (1, 8, 8)
    assert digits.train.tensors[0].shape == (sizes["train"], 1, 8, 8)
    assert digits.train.tensors[0].dtype == torch.float32
    assert digits.train.tensors[1].dtype == torch.int64


def test_stratified(digits):
    overall = np.bincount(load_digits().target, minlength=10) / 1797
    for name in ("train", "val", "test"):
        labels = getattr(digits, name).tensors[1].numpy()
        share = np.bincount(labels, minlength=10) / len(labels)
        assert np.abs(share - overall).max() < 0.01


def test_normalised_with_train_stats(digits):
    x = digits.train.tensors[0]
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std(correction=0)) - 1) < 1e-4
    raw = torch.tensor(load_digits().images, dtype=torch.float64) / 16
    assert digits.mean[0] == pytest.approx(float(raw.mean()), abs=0.01)  # train ~ whole set
    # undoing the normalisation gives back every original image exactly once
    restored = (_all_images(digits).double() * digits.std[0] + digits.mean[0]) * 16
    restored = restored.reshape(1797, 64).round().numpy()
    original = load_digits().data
    assert sorted(map(tuple, restored)) == sorted(map(tuple, original))


def test_split_is_fixed_and_independent_of_seed(digits):
    other = load_dataset("digits", seed=123)
    for name in ("train", "val", "test"):
        for a, b in zip(getattr(digits, name).tensors, getattr(other, name).tensors, strict=True):
            assert torch.equal(a, b)
    # train, val and test are disjoint
    rows = {
        s: {tuple(r) for r in getattr(digits, s).tensors[0].reshape(-1, 64).tolist()}
        for s in ("train", "val", "test")
    }
    assert not (rows["train"] & rows["val"]) and not (rows["train"] & rows["test"])
    assert not (rows["val"] & rows["test"])  # all 1797 source images are distinct


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 16, 16), (3, 8, 8), (1, 32, 32)])
def test_resize_shapes(digits, shape):
    c, h, w = shape
    bundle = load_dataset(f"digits:{c}x{h}x{w}")
    assert bundle.input_shape == shape
    assert bundle.test.tensors[0].shape == (len(digits.test), c, h, w)
    assert torch.equal(bundle.test.tensors[1], digits.test.tensors[1])
    x = bundle.train.tensors[0]
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(c), atol=1e-4)
    assert len(bundle.mean) == c and len(bundle.std) == c


def test_resize_is_bilinear_of_raw_image(digits):
    bundle = load_dataset("digits:3x16x16")
    raw = digits.test.tensors[0] * digits.std[0] + digits.mean[0]
    expected = F.interpolate(raw, size=(16, 16), mode="bilinear", align_corners=False)
    restored = bundle.test.tensors[0] * torch.tensor(bundle.std).view(1, 3, 1, 1)
    restored = restored + torch.tensor(bundle.mean).view(1, 3, 1, 1)
    for channel in range(3):
        torch.testing.assert_close(restored[:, channel : channel + 1], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("text", ["digits:1x12x12", "digits:3x16x32", "digits:1x64x64"])
def test_bad_digits_size(text):
    with pytest.raises(DataError, match="H=W in") as err:
        load_dataset(text)
    assert repr(text) in str(err.value)
