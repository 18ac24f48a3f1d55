"""The small vision transformer: sizes, named attention products, training (issue 14 item 4)."""

import pytest
import torch
from torch.utils.data import TensorDataset

from axdnn.cost import count_ops
from axdnn.errors import ModelError
from axdnn.inject import list_op_sites
from axdnn.models import TinyViT, build_model
from axdnn.nn import Plan, approximate
from axdnn.train import TrainConfig, fit


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_every_input_size_gives_49_tokens_and_class_scores(shape):
    model = build_model("vit_tiny", in_channels=shape[0], num_classes=10).eval()
    assert model(torch.rand(2, *shape)).shape == (2, 10)
    sites = list_op_sites(model, torch.rand(1, *shape))
    assert sites["blocks.0.attn.matmul#0"] == (3, 49, 49)  # heads x tokens x tokens
    assert sites["blocks.2.attn.matmul#1"] == (3, 49, 16)


def test_attention_products_are_counted_and_planned():
    model = TinyViT(1, 10, depth=1).eval()
    cost = {r.name: r.macs for r in count_ops(model, (1, 28, 28)).layers}
    assert cost["blocks.0.attn.matmul#0"] == 3 * 49 * 49 * 16
    assert cost["blocks.0.attn.matmul#1"] == 3 * 49 * 16 * 49
    approx = approximate(model, Plan.uniform("drum:4"), torch.rand(16, 1, 28, 28))
    status = {r.name: r.status for r in approx.approximation.layers}
    assert status["blocks.0.attn.matmul#0"] == status["blocks.0.mlp.0"] == "approximate"
    assert set(status) == {name for name, macs in cost.items() if macs}


def test_bad_shapes_are_model_errors():
    with pytest.raises(ModelError, match="divisible"):
        TinyViT(1, 10, dim=10, heads=3)
    with pytest.raises(ModelError, match="depth"):
        TinyViT(1, 10, depth=0)


def test_training_lowers_the_loss():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(96, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].mean(dim=(1, 2)) > x[:, 0, 4:].mean(dim=(1, 2))).long()
    data = TensorDataset(x, y)
    history = fit(
        TinyViT(1, 2, depth=1), data, data, 2, TrainConfig(epochs=6, lr=3e-3, batch_size=32)
    )
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss


def test_per_operation_resilience_and_multipliers_on_attention_and_mlp():
    from axdnn.analysis.redcane import redcane

    torch.manual_seed(0)
    model = TinyViT(1, 10, depth=1).eval()
    x, tx, ty = torch.rand(32, 1, 8, 8), torch.rand(24, 1, 8, 8), torch.randint(0, 10, (24,))
    result = redcane(
        model, x, tx, ty, candidates=["drum:4@u8"], magnitudes=(0.5,), means=(), repeats=1,
        budget=0.5,
    )  # fmt: skip
    assert {row["operation"] for row in result.ranking} == set(TinyViT.operations)
    chosen = {c.operation for c in result.choices}
    assert {"scores", "values", "mlp"} <= chosen  # products only; softmax takes no multiplier
    assert result.confirmation["functional_sites_simulated"]
    plan = result.confirmation["rounds"][-1]["plan"]["layers"]
    assert plan["blocks.0.attn.matmul#0"]["multiplier"] == "drum:4@u8"
