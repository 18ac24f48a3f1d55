"""Fashion-MNIST (Xiao, Rasul and Vollgraf, arXiv:1708.07747, 2017): 60,000 training and 10,000
test 28x28 grey images of 10 clothing classes in the MNIST IDX format. The benchmark data of
axdnn: hard enough to tell approximations apart, small enough for two CPU cores. Never
downloaded: it is read from a folder the user has, by default Debian's package."""

from __future__ import annotations

import os
from pathlib import Path

from axdnn.data.bundle import DatasetBundle
from axdnn.data.idx import MNIST_FILES, load_idx_folder
from axdnn.data.spec import DataSpec
from axdnn.errors import DataError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where `apt-get install dataset-fashion-mnist` puts the four gzipped IDX files."""
DATA_ENV = "AXDNN_DATA"
"""Environment variable naming a data root; Fashion-MNIST is then read from its `fashion-mnist/`."""
INSTALL_HINT = "apt-get install dataset-fashion-mnist"

CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def default_folders() -> list[Path]:
    """The folders a spec without DIR is read from: `$AXDNN_DATA/fashion-mnist` when the variable
    is set (and then only it, so a user's choice is never silently replaced), else Debian's."""
    root = os.environ.get(DATA_ENV, "").strip()
    if root:
        return [Path(root).expanduser() / "fashion-mnist"]
    return [DEBIAN_DIR]


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob(MNIST_FILES["train"][0] + "*"))


def _resolve(spec: DataSpec) -> Path:
    tried = [spec.path] if spec.path is not None else default_folders()
    for folder in tried:
        if _has_files(folder):
            return folder
    names = ", ".join(repr(str(f)) for f in tried)
    where = (
        f"${DATA_ENV} is set to {os.environ[DATA_ENV]!r}"
        if spec.path is None and os.environ.get(DATA_ENV, "").strip()
        else f"set ${DATA_ENV}=DIR to read DIR/fashion-mnist"
    )
    raise DataError(
        f"Fashion-MNIST files not found for dataset spec {spec.text!r}: looked in {names} for "
        f"{MNIST_FILES['train'][0]}[.gz] and the three other MNIST-named files. Install them "
        f"with `{INSTALL_HINT}` (as root; it puts them in {str(DEBIAN_DIR)!r}), or name a "
        f"folder that holds them as fashion-mnist:DIR ({where}). Nothing is downloaded."
    )


def load_fashion_mnist(spec: DataSpec, seed: int = 0) -> DatasetBundle:
    """Load `fashion-mnist[:DIR][:CxHxW]`; val is a fixed stratified 10% of the training files."""
    del seed  # the split is fixed so results compare across seeds
    return load_idx_folder(_resolve(spec), spec, CLASS_NAMES)
