"""Every zoo model under a product table gives the same outputs on every backend, bit for bit:
the fused native and low-rank layer paths against the reference kernels (grouped, depthwise,
1x1, strided and linear layers included)."""

import pytest
import torch

from axdnn.kernels import native
from axdnn.models import build_model, list_models
from axdnn.nn import Plan, approximate

SHAPES = {"digits_cnn": (1, 8, 8), "lenet5": (1, 32, 32), "capsnet": (1, 8, 8)}


@pytest.mark.parametrize("name", list_models())
def test_zoo_model_outputs_agree_across_backends(name):
    torch.manual_seed(0)
    shape = SHAPES.get(name, (3, 32, 32))
    model = build_model(name, in_channels=shape[0], num_classes=10).eval()
    x = torch.rand(2, *shape)
    calib = torch.rand(8, *shape)
    with torch.no_grad():
        model(x)  # a model sized by its first input (capsnet) builds its layers once, here
    backends = ["auto", "reference"] + (["native"] if native.available() else [])
    outputs = {}
    for spec in ("drum:4", "mitchell@s8"):
        for backend in backends:
            approx = approximate(model, Plan.uniform(spec, backend=backend), calib)
            with torch.no_grad():
                outputs[spec, backend] = approx(x)
        for backend in backends[1:]:
            assert torch.equal(outputs[spec, backend], outputs[spec, "auto"]), (spec, backend)
