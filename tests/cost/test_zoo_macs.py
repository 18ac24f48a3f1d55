"""Zoo models count to their published MAC figures (CIFAR, 3x32x32, 10 classes)."""

import pytest

from axdnn.cost import count_ops

models = pytest.importorskip("axdnn.models", reason="axdnn.models (the model zoo) not importable")


@pytest.mark.parametrize(
    ("name", "mmacs", "tolerance"),
    [
        ("resnet20", 40.6, 0.02),  # He et al. 2016, CIFAR ResNet-20: ~41 M MACs
        ("resnet56", 125.5, 0.02),
        ("vgg16", 313.0, 0.03),  # VGG-16 CIFAR variant (Simonyan & Zisserman layout)
    ],
)
def test_zoo_macs(name, mmacs, tolerance):
    report = count_ops(models.build_model(name, 3, 10), (3, 32, 32))
    assert report.total_macs / 1e6 == pytest.approx(mmacs, rel=tolerance)
    assert all(layer.kind in ("conv2d", "linear") for layer in report.layers)
    assert report.layers[-1].kind == "linear" and report.layers[-1].out_channels == 10
