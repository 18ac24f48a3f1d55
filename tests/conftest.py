"""Shared fixtures: the digits data and a small trained digits CNN (trained once per session; the
inject and analysis tests share it; cached in the session temp directory)."""

import pytest
import torch

from axdnn.data import load_dataset
from axdnn.models import build_model
from axdnn.train import TrainConfig, fit


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def trained_cnn(digits, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "axdnn_digits_cnn_e8_seed0.pt"
    torch.manual_seed(0)
    model = build_model("digits_cnn", 1, 10)
    if cache.exists():
        model.load_state_dict(torch.load(cache, weights_only=True))
    else:
        fit(model, digits.train, digits.val, 10, TrainConfig(epochs=8, seed=0))
        torch.save(model.state_dict(), cache)
    return model.eval()
