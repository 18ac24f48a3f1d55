"""Datasets: one spec string per source (digits, MNIST IDX, Fashion-MNIST, CIFAR-10/100, image
folders, synthetic), loaded into a normalised train/val/test DatasetBundle."""

from axdnn.data.api import load_dataset, make_loader
from axdnn.data.bundle import DatasetBundle
from axdnn.data.spec import DataSpec, list_sources, parse_spec

__all__ = ["DatasetBundle", "DataSpec", "list_sources", "load_dataset", "make_loader", "parse_spec"]
