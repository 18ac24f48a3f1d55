import pytest
import torch
from torch.utils.data import TensorDataset

from axdnn.data import DatasetBundle, load_dataset, make_loader
from axdnn.errors import ConfigError, DataError


def _order(loader):
    return torch.cat([batch[0] for batch in loader]).tolist()


def test_make_loader_seeded_shuffle():
    data = TensorDataset(torch.arange(50), torch.zeros(50))
    first = _order(make_loader(data, 8, shuffle=True, seed=3))
    assert first == _order(make_loader(data, 8, shuffle=True, seed=3))
    assert first != _order(make_loader(data, 8, shuffle=True, seed=4))
    assert sorted(first) == list(range(50))
    assert _order(make_loader(data, 8, shuffle=False, seed=3)) == list(range(50))
    loader = make_loader(data, 8, shuffle=True, seed=3)
    assert loader.num_workers == 0 and len(loader) == 7


@pytest.mark.parametrize("size", [0, -1, 2.5])
def test_make_loader_bad_batch_size(size):
    with pytest.raises(ConfigError, match="batch size"):
        make_loader(TensorDataset(torch.zeros(2)), size, shuffle=False, seed=0)


def test_load_dataset_returns_bundle():
    bundle = load_dataset("synthetic:1x4x4:2:40")
    assert isinstance(bundle, DatasetBundle) and bundle.spec == "synthetic:1x4x4:2:40"


def test_load_dataset_unknown_source():
    with pytest.raises(DataError, match="unknown dataset source"):
        load_dataset("svhn:/x")
