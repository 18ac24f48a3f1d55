"""The data room's entry points: load any spec into a DatasetBundle, and make seeded loaders."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset

from axdnn.data.bundle import DatasetBundle
from axdnn.data.cifar import load_cifar
from axdnn.data.digits import load_digits_bundle
from axdnn.data.fashion import load_fashion_mnist
from axdnn.data.folder import load_folder
from axdnn.data.idx import load_mnist
from axdnn.data.spec import DataSpec, parse_spec
from axdnn.data.synthetic import load_synthetic
from axdnn.errors import ConfigError

LOADERS: dict[str, Callable[[DataSpec, int], DatasetBundle]] = {
    "digits": load_digits_bundle,
    "mnist": load_mnist,
    "fashion-mnist": load_fashion_mnist,
    "cifar10": load_cifar,
    "cifar100": load_cifar,
    "folder": load_folder,
    "synthetic": load_synthetic,
}


def load_dataset(spec: str, seed: int = 0) -> DatasetBundle:
    """Load the dataset a spec string names (see `list_sources()`); problems raise DataError.

    Splits are fixed for every source; `seed` only changes generated (synthetic) data.
    """
    parsed = parse_spec(spec)
    return LOADERS[parsed.source](parsed, seed)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """A single-process DataLoader whose shuffling order is fixed by `seed`."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size {batch_size!r} is invalid; expected a positive integer")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed),
        num_workers=0,
    )
