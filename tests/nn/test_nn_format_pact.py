"""PACT (Choi et al. 2018) acceptance: digits_cnn trained with 4-bit PACT activations on every
layer (and 8-bit fixed-point weights) reaches float accuracy within 1 point, same epochs/seed."""

import pytest
import torch

from axdnn.data import load_dataset
from axdnn.models import build_model
from axdnn.nn import FormatConv2d, LayerSpec, Plan, approximate
from axdnn.train import TrainConfig, evaluate, fit

EPOCHS = 5
SEED = 0


def train(bundle, plan: Plan | None) -> tuple[float, torch.nn.Module]:
    torch.manual_seed(SEED)
    model = build_model("digits_cnn", in_channels=1, num_classes=10)
    if plan is not None:
        model = approximate(model, plan, bundle.train, seed=SEED)
    fit(model, bundle.train, bundle.val, 10, TrainConfig(epochs=EPOCHS, seed=SEED))
    return evaluate(model, bundle.test, 10).top1, model


@pytest.mark.slow  # ~60 s CPU (100 s wall on the shared 2-core machine): two 5-epoch runs
def test_pact_4bit_activations_train_digits_cnn_to_float_accuracy():
    bundle = load_dataset("digits")
    float_top1, _ = train(bundle, None)
    plan = Plan(layers={"*": LayerSpec(act_format="pact:4", weight_format="fxp:s1.7")})
    pact_top1, model = train(bundle, plan)
    assert isinstance(model.features[0], FormatConv2d)
    alphas = [float(m.act_alpha.detach()) for m in model.modules() if hasattr(m, "act_alpha")]
    assert len(alphas) == 4 and all(a > 0 for a in alphas)
    assert float_top1 > 0.9
    assert pact_top1 >= float_top1 - 0.01, (pact_top1, float_top1)
