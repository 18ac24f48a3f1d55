"""Image folders in the ImageNet/ImageFolder style: one subfolder per class, read with Pillow and
resized to CxHxW (default 3x32x32); split by train/ [val/] test/ subfolders, else 80/10/10."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from axdnn.data.bundle import DatasetBundle, Shape, build_bundle, split_off
from axdnn.data.paths import require_dir
from axdnn.data.spec import DataSpec
from axdnn.errors import DataError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
)
FOLDER_SHAPE: Shape = (3, 32, 32)
FOLDER_FRACTIONS = (0.8, 0.1, 0.1)
VAL_FRACTION = 0.1
_PROGRESS_FROM = 2000  # show a progress bar for folders with at least this many images


def class_dirs(root: Path) -> list[str]:
    """Sorted names of the visible subfolders of `root`: the classes."""
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise DataError(
            f"image folder {str(root)!r} has no class subfolders; expected "
            "ROOT/<class>/<image> (or ROOT/train/<class>/<image>)"
        )
    return names


def read_image(path: Path, shape: Shape) -> np.ndarray:
    """One image as a C x H x W uint8 array, converted to grey/RGB and resized bilinearly."""
    from PIL import Image

    c, h, w = shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if c == 1 else "RGB")
            if image.size != (w, h):
                image = image.resize((w, h), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except Exception as exc:  # Pillow raises many types for corrupt files; name the file
        raise DataError(f"cannot read image {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    return array[None] if c == 1 else array.transpose(2, 0, 1)


def _image_files(folder: Path) -> list[Path]:
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )
    if not files:
        raise DataError(
            f"class folder {str(folder)!r} holds no images; accepted extensions: "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}"
        )
    return files


def read_split(root: Path, classes: list[str], shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """All images under root/<class>/ for the known `classes`; an unknown class is an error."""
    present = class_dirs(root)
    unknown = sorted(set(present) - set(classes))
    if unknown:
        raise DataError(
            f"image folder {str(root)!r} has classes {unknown} that the training "
            f"folder lacks; known classes: {classes}"
        )
    files = [(f, classes.index(name)) for name in present for f in _image_files(root / name)]
    images = np.empty((len(files), *shape), dtype=np.uint8)
    bar = tqdm(files, desc=f"reading {root.name}", leave=False, disable=len(files) < _PROGRESS_FROM)
    for i, (path, _) in enumerate(bar):
        images[i] = read_image(path, shape)
    return images, np.array([label for _, label in files], dtype=np.int64)


def load_folder(spec: DataSpec, seed: int = 0) -> DatasetBundle:
    """Load `folder:DIR[:CxHxW]`; splits are folder-given or a fixed stratified 80/10/10."""
    del seed  # the split is fixed so results compare across seeds
    root = require_dir(spec.path, spec.text)
    shape = spec.shape or FOLDER_SHAPE
    if (root / "train").is_dir():
        if not (root / "test").is_dir():
            raise DataError(
                f"image folder {str(root)!r} has train/ but no test/ subfolder; "
                "expected train/ and test/ (val/ optional), or class folders only"
            )
        classes = class_dirs(root / "train")
        train_x, train_y = read_split(root / "train", classes, shape)
        test = read_split(root / "test", classes, shape)
        if (root / "val").is_dir():
            train, val = (train_x, train_y), read_split(root / "val", classes, shape)
        else:
            train, val = split_off(train_x, train_y, (1 - VAL_FRACTION, VAL_FRACTION))
    else:
        classes = class_dirs(root)
        train, val, test = split_off(*read_split(root, classes, shape), FOLDER_FRACTIONS)
    return build_bundle(
        spec.text,
        {"train": train, "val": val, "test": test},
        class_names=classes,
        scale=255.0,
        shape=shape,
    )
