"""Torch-Pruning slims every zoo model at several ratios without a shape error (slow: every
zoo model, VGG-16 and MobileNetV2 included)."""

import pytest
import torch

from axdnn.compress import prune_structured
from axdnn.models import build_model, list_models

SHAPES = {"digits_cnn": (1, 8, 8), "lenet5": (1, 28, 28), "capsnet": (1, 8, 8)}


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_slims_without_shape_errors(name, ratio):
    shape = SHAPES.get(name, (3, 32, 32))
    torch.manual_seed(0)
    model = build_model(name, in_channels=shape[0], num_classes=10).eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))  # capsnet builds its layers from its first input
    pruned, record = prune_structured(model, shape, ratio)
    with torch.no_grad():
        assert pruned(torch.randn(2, *shape)).shape == (2, 10)
    assert record.params_after < record.params_before
    assert record.macs_after < record.macs_before
    assert sum(p.numel() for p in model.parameters()) == record.params_before  # original kept
    pruned_widths = [w.after for w in record.layers if w.name not in record.ignored]
    assert all(w >= 1 for w in pruned_widths)
