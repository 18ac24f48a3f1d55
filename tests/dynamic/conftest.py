import pytest
import torch

from axdnn.dynamic.model import DynamicModel


@pytest.fixture(scope="module")
def dyn(trained_cnn):
    torch.set_num_threads(1)
    return DynamicModel(trained_cnn, (1, 8, 8))


@pytest.fixture(scope="module")
def test_xy(digits):
    return digits.test.tensors
