import numpy as np
import pytest
import torch
from PIL import Image

from axdnn.data import load_dataset
from axdnn.errors import DataError

COLOURS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "eel": (30, 30, 200)}


def make_class_folders(root, per_class=10, size=(6, 5), classes=COLOURS):
    """PNG images of one colour per class (with a little per-image variation)."""
    for name, colour in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixel = np.array(colour, dtype=np.uint8) + i
            array = np.broadcast_to(pixel, (size[1], size[0], 3)).copy()
            Image.fromarray(array).save(root / name / f"{i:03d}.png")


def restore(bundle, name):
    x, y = getattr(bundle, name).tensors
    c = bundle.input_shape[0]
    mean = torch.tensor(bundle.mean).view(1, c, 1, 1)
    std = torch.tensor(bundle.std).view(1, c, 1, 1)
    return (x * std + mean) * 255, y


def test_class_folders_split_80_10_10(tmp_path):
    make_class_folders(tmp_path)
    (tmp_path / "cat" / "notes.txt").write_text("ignored: not an image")
    bundle = load_dataset(f"folder:{tmp_path}")
    assert bundle.class_names == ["cat", "dog", "eel"] and bundle.num_classes == 3
    assert bundle.input_shape == (3, 32, 32)  # the default size
    assert [len(bundle.train), len(bundle.val), len(bundle.test)] == [24, 3, 3]
    for split in ("train", "val", "test"):
        x, y = restore(bundle, split)
        assert torch.bincount(y, minlength=3).tolist() == [len(y) // 3] * 3  # stratified
        for image, label in zip(x, y, strict=True):
            base = torch.tensor(COLOURS[bundle.class_names[label]], dtype=torch.float32)
            offset = image.mean(dim=(1, 2)) - base  # uniform images survive resizing exactly
            assert torch.allclose(offset, offset[0].expand(3), atol=1e-3)
            assert -1e-3 < float(offset[0]) < 10


def test_given_splits_and_grey_size(tmp_path):
    make_class_folders(tmp_path / "train", per_class=4)
    make_class_folders(tmp_path / "val", per_class=2)
    make_class_folders(tmp_path / "test", per_class=3, classes={"dog": COLOURS["dog"]})
    bundle = load_dataset(f"folder:{tmp_path}:1x8x12")
    assert bundle.input_shape == (1, 8, 12) and len(bundle.mean) == 1
    assert [len(bundle.train), len(bundle.val), len(bundle.test)] == [12, 6, 3]
    assert bundle.test.tensors[1].tolist() == [1, 1, 1]  # 'dog' keeps its training index
    x, _ = restore(bundle, "test")
    luma = 0.299 * 30 + 0.587 * 200 + 0.114 * 30
    assert abs(float(x[0].mean()) - luma) < 1.5


def test_train_without_val_carves_validation(tmp_path):
    make_class_folders(tmp_path / "train", per_class=10)
    make_class_folders(tmp_path / "test", per_class=2)
    bundle = load_dataset(f"folder:{tmp_path}")
    assert [len(bundle.train), len(bundle.val), len(bundle.test)] == [27, 3, 6]


def test_deterministic(tmp_path):
    make_class_folders(tmp_path)
    a, b = load_dataset(f"folder:{tmp_path}:3x4x4"), load_dataset(f"folder:{tmp_path}:3x4x4", 7)
    assert torch.equal(a.val.tensors[0], b.val.tensors[0])


def test_unreadable_image_named(tmp_path):
    make_class_folders(tmp_path)
    bad = tmp_path / "dog" / "broken.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(DataError, match="cannot read image") as err:
        load_dataset(f"folder:{tmp_path}")
    assert str(bad) in str(err.value)


def test_truncated_image_named(tmp_path):
    make_class_folders(tmp_path, size=(40, 40))
    path = tmp_path / "eel" / "003.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match="cannot read image") as err:
        load_dataset(f"folder:{tmp_path}")
    assert str(path) in str(err.value)


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="has no class subfolders"):
        load_dataset(f"folder:{tmp_path}")


def test_class_folder_without_images(tmp_path):
    make_class_folders(tmp_path)
    (tmp_path / "fox").mkdir()
    (tmp_path / "fox" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="holds no images") as err:
        load_dataset(f"folder:{tmp_path}")
    assert "fox" in str(err.value)


def test_test_class_unknown_to_train(tmp_path):
    make_class_folders(tmp_path / "train", classes={"cat": COLOURS["cat"], "dog": COLOURS["dog"]})
    make_class_folders(tmp_path / "test", per_class=2)
    with pytest.raises(DataError, match=r"classes \['eel'\] that the training folder lacks"):
        load_dataset(f"folder:{tmp_path}")


def test_train_without_test(tmp_path):
    make_class_folders(tmp_path / "train")
    with pytest.raises(DataError, match="has train/ but no test/"):
        load_dataset(f"folder:{tmp_path}")


def test_too_few_images_for_split(tmp_path):
    make_class_folders(tmp_path, per_class=2)
    with pytest.raises(DataError, match="empty val split"):
        load_dataset(f"folder:{tmp_path}")


def test_missing_directory(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"folder:{tmp_path / 'absent'}:3x8x8")
