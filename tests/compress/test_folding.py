"""Batch norm folded into the conv or linear layer before it: the deployed form of a (pruned)
model, saved and reloaded as a normal checkpoint."""

import pytest
import torch
from torch import nn

from axdnn.compress import compressed_checkpoint, fold_batchnorm, prune_structured
from axdnn.cost import count_ops
from axdnn.errors import CheckpointError, CompressionError
from axdnn.models import build_model, list_models
from axdnn.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

SHAPES = {"digits_cnn": (1, 8, 8), "lenet5": (1, 28, 28), "capsnet": (1, 8, 8)}


def _trained_looking(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    """A zoo model whose batch-norm statistics and affine terms are not the identity, so a
    fold that forgot one of them would change the outputs."""
    shape = SHAPES.get(name, (3, 32, 32))
    torch.manual_seed(0)
    model = build_model(name, in_channels=shape[0], num_classes=10).eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model, shape


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("name", ["resnet20", "digits_cnn", "mobilenetv2_cifar"])
def test_folding_removes_every_batchnorm_and_keeps_the_outputs(name):
    model, shape = _trained_looking(name)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(1))
    folded, record = fold_batchnorm(model, shape)
    assert _batchnorms(folded) == 0 and len(record) == _batchnorms(model) > 0
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)
    before, after = count_ops(model, shape), count_ops(folded, shape)
    assert after.total_macs == before.total_macs
    assert after.total_params < before.total_params
    assert _batchnorms(model) > 0  # the original is untouched


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_folds(name):
    model, shape = _trained_looking(name)
    folded, _ = fold_batchnorm(model, shape)
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)


class SharedConvOutput(nn.Module):
    """The conv's output feeds the batch norm and a skip path: folding would change the skip."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.after_relu = nn.BatchNorm2d(2)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(self.bn(y)) + y + self.after_relu(torch.relu(x))


def test_a_batchnorm_whose_input_is_used_elsewhere_or_not_a_layer_stays():
    model = SharedConvOutput().eval()
    with torch.no_grad():
        model.bn.running_mean.fill_(0.3)
    folded, record = fold_batchnorm(model, (2, 5, 5))
    assert record == {}
    assert isinstance(folded.bn, nn.BatchNorm2d) and isinstance(folded.after_relu, nn.BatchNorm2d)


def test_a_model_torch_fx_cannot_trace_is_a_clear_error():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow
                return self.bn(self.conv(x))
            return x

    with pytest.raises(CompressionError, match="trace"):
        fold_batchnorm(Branchy().eval(), (1, 2, 2))


def test_folded_pruned_model_saves_and_reloads_bit_identical(tmp_path):
    model, shape = _trained_looking("resnet20")
    base = Checkpoint("resnet20", {"in_channels": 3, "num_classes": 10}, model.state_dict(),
                      input_shape=shape)  # fmt: skip
    pruned, prune_record = prune_structured(model, shape, 0.5)
    folded, folds = fold_batchnorm(pruned, shape)
    ckpt = compressed_checkpoint(base, folded, pruning=prune_record.to_dict(), folded=folds)
    path = save_checkpoint(tmp_path / "deployed.pt", ckpt)
    again = load_checkpoint(path).build()
    assert _batchnorms(again) == 0
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(again(x), folded(x))
        torch.testing.assert_close(again(x), pruned(x), rtol=1e-4, atol=1e-4)
    assert count_ops(again, shape).total_params == count_ops(folded, shape).total_params


@pytest.mark.parametrize(
    "hostile",
    [
        {"layer1.0.conv1": "layer1.0.bn1"},  # swapped: a conv is not a batch norm
        {"layer1.0.bn1": "no.such.conv"},
        {"layer1.0.bn1": 3},
        ["layer1.0.bn1"],
    ],
)
def test_stored_folds_that_do_not_fit_the_model_are_checkpoint_errors(tmp_path, hostile):
    model, shape = _trained_looking("resnet20")
    folded, _ = fold_batchnorm(model, shape)
    ckpt = Checkpoint("resnet20", {"in_channels": 3, "num_classes": 10}, folded.state_dict(),
                      extra={"folded_batchnorm": hostile})  # fmt: skip
    with pytest.raises(CheckpointError, match="folded"):
        load_checkpoint(save_checkpoint(tmp_path / "bad.pt", ckpt)).build()
