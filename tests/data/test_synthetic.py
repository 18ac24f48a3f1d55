import torch

from axdnn.data import load_dataset


def test_shapes_and_default_size():
    bundle = load_dataset("synthetic:3x8x8:4")
    sizes = [len(getattr(bundle, s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 512 and min(sizes) > 0
    assert bundle.input_shape == (3, 8, 8) and bundle.num_classes == 4
    assert bundle.class_names == ["class0", "class1", "class2", "class3"]
    assert bundle.train.tensors[0].shape[1:] == (3, 8, 8)
    labels = torch.cat([getattr(bundle, s).tensors[1] for s in ("train", "val", "test")])
    assert int(labels.min()) >= 0 and int(labels.max()) < 4
    assert len(torch.unique(labels)) == 4


def test_seed_determines_data():
    a = load_dataset("synthetic:1x6x6:3:90", seed=1)
    b = load_dataset("synthetic:1x6x6:3:90", seed=1)
    c = load_dataset("synthetic:1x6x6:3:90", seed=2)
    assert torch.equal(a.train.tensors[0], b.train.tensors[0])
    assert torch.equal(a.test.tensors[1], b.test.tensors[1])
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])


def test_labels_are_learnable():
    """A linear least-squares classifier fitted on train must beat chance by far on test."""
    bundle = load_dataset("synthetic:1x8x8:5:3000", seed=0)
    x, y = (t for t in bundle.train.tensors)
    design = torch.cat([x.reshape(len(x), -1), torch.ones(len(x), 1)], dim=1).double()
    targets = torch.nn.functional.one_hot(y, 5).double()
    weights = torch.linalg.lstsq(design, targets).solution
    xt, yt = bundle.test.tensors
    test_design = torch.cat([xt.reshape(len(xt), -1), torch.ones(len(xt), 1)], dim=1).double()
    accuracy = float(((test_design @ weights).argmax(1) == yt).double().mean())
    assert accuracy > 0.7  # chance is 0.2
