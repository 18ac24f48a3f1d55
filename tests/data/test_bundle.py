import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.data.bundle import build_bundle, channel_stats, stratified_split, to_shape
from axdnn.errors import DataError


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.integers(0, 3))
def test_stratified_split_partitions_each_class(labels, seed):
    labels = np.array(labels)
    fractions = (0.7, 0.1, 0.2)
    parts = stratified_split(labels, fractions, seed)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(labels)))  # a partition of the indices
    for cls in np.unique(labels):
        n = int((labels == cls).sum())
        counts = [int((labels[p] == cls).sum()) for p in parts]
        # every class is split by the fractions (round half up), the first part takes the rest
        assert counts[1:] == [int(np.floor(f * n + 0.5)) for f in fractions[1:]]
        assert counts[0] == n - sum(counts[1:])
    again = stratified_split(labels, fractions, seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_stratified_split_depends_on_seed():
    labels = np.repeat(np.arange(3), 30)
    a = stratified_split(labels, (0.5, 0.5), 0)
    b = stratified_split(labels, (0.5, 0.5), 1)
    assert not np.array_equal(a[0], b[0])


def test_to_shape_channels_and_resize():
    grey = torch.rand(2, 1, 4, 4)
    rgb = to_shape(grey, (3, 4, 4), "t")
    assert rgb.shape == (2, 3, 4, 4)
    assert torch.equal(rgb[:, 0], rgb[:, 2]) and torch.equal(rgb[:, 1], grey[:, 0])
    colour = torch.rand(2, 3, 4, 4)
    luma = to_shape(colour, (1, 4, 4), "t")
    expected = 0.299 * colour[:, 0] + 0.587 * colour[:, 1] + 0.114 * colour[:, 2]
    torch.testing.assert_close(luma[:, 0], expected)
    big = to_shape(grey, (1, 8, 12), "t")
    torch.testing.assert_close(
        big, F.interpolate(grey, size=(8, 12), mode="bilinear", align_corners=False)
    )
    assert to_shape(colour, (3, 2, 2), "t").shape == (2, 3, 2, 2)


def test_channel_stats_matches_numpy():
    images = torch.rand(5, 3, 4, 4) * torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1)
    mean, std = channel_stats(images)
    array = images.numpy().astype(np.float64)
    np.testing.assert_allclose(mean, array.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, array.std(axis=(0, 2, 3)), rtol=1e-6)
    assert channel_stats(torch.ones(3, 1, 2, 2))[1] == [1.0]  # constant channel: no division by 0


def _split(n, labels=None):
    x = np.arange(n * 4, dtype=np.uint8).reshape(n, 1, 2, 2)
    return x, np.zeros(n, dtype=np.int64) if labels is None else np.array(labels)


def test_build_bundle_normalises_with_train_stats():
    splits = {"train": _split(4), "val": _split(2), "test": _split(3)}
    bundle = build_bundle("t", splits, ["a", "b"], scale=255.0)
    x = bundle.train.tensors[0]
    assert x.dtype == torch.float32 and bundle.train.tensors[1].dtype == torch.int64
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std(correction=0)) - 1) < 1e-5
    raw = torch.tensor(splits["test"][0], dtype=torch.float32) / 255
    torch.testing.assert_close(bundle.test.tensors[0] * bundle.std[0] + bundle.mean[0], raw)
    assert bundle.summary()["sizes"] == {"train": 4, "val": 2, "test": 3}


def test_build_bundle_errors():
    good = _split(2)
    with pytest.raises(DataError, match="empty val split"):
        build_bundle("t", {"train": good, "val": _split(0), "test": good}, ["a"], 1.0)
    with pytest.raises(DataError, match="labels range 0..5, expected 0..1"):
        build_bundle("t", {"train": _split(2, [0, 5]), "val": good, "test": good}, ["a", "b"], 1.0)
    with pytest.raises(DataError, match="2 images but 3 labels"):
        build_bundle("t", {"train": _split(2, [0, 0, 0]), "val": good, "test": good}, ["a"], 1.0)
