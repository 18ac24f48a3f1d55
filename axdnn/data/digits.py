"""The embedded default dataset: scikit-learn's 8x8 handwritten digits (1797 images, UCI
"Optical Recognition of Handwritten Digits", Alpaydin & Kaynak 1998), optionally resized."""

from __future__ import annotations

import numpy as np

from axdnn.data.bundle import DatasetBundle, build_bundle, split_off
from axdnn.data.spec import DataSpec
from axdnn.errors import DataError

DIGITS_SIZES = (8, 16, 32)
DIGITS_FRACTIONS = (0.7, 0.1, 0.2)  # train / val / test, stratified, fixed seed
DIGITS_MAX = 16.0  # pixel values are counts 0..16


def load_digits_bundle(spec: DataSpec, seed: int = 0) -> DatasetBundle:
    """Load `digits[:CxHxW]`; the split is fixed (independent of `seed`) so results compare."""
    del seed  # the embedded data and its split are fixed
    shape = spec.shape or (1, 8, 8)
    if shape[1] != shape[2] or shape[1] not in DIGITS_SIZES:
        raise DataError(
            f"bad digits size {shape[1]}x{shape[2]} in spec {spec.text!r}: expected H=W in "
            f"{{{', '.join(map(str, DIGITS_SIZES))}}}, e.g. digits:3x32x32"
        )
    from sklearn.datasets import load_digits

    data = load_digits()
    images = data.images.astype(np.float32)[:, None]
    labels = data.target.astype(np.int64)
    train, val, test = split_off(images, labels, DIGITS_FRACTIONS)
    return build_bundle(
        spec.text,
        {"train": train, "val": val, "test": test},
        class_names=[str(d) for d in range(10)],
        scale=DIGITS_MAX,
        shape=shape,
    )
