import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from axdnn.errors import ConfigError
from axdnn.train import TrainConfig, evaluate, fit, score_logits


def blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    return TensorDataset(centres[y] + 0.5 * torch.randn(n, 2, generator=g), y)


def test_fit_learns_separable_data_and_keeps_best_epoch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    history = fit(model, blobs(), blobs(seed=1), 3, TrainConfig(epochs=5, lr=1e-2))
    assert len(history.epochs) == 5
    assert history.best_val_top1 == max(e.val_top1 for e in history.epochs)
    assert evaluate(model, blobs(seed=1), 3).top1 == pytest.approx(history.best_val_top1)
    assert history.best_val_top1 > 0.9


def test_fit_is_deterministic_for_a_seed():
    def run():
        torch.manual_seed(0)
        model = nn.Linear(2, 3)
        fit(model, blobs(), blobs(seed=1), 3, TrainConfig(epochs=2, seed=3, optimizer="sgd"))
        return model.weight.detach().clone()

    assert torch.equal(run(), run())


def test_regularizer_and_custom_loss_are_used():
    model = nn.Linear(2, 3)
    calls = []

    def reg(m):
        calls.append(1)
        return m.weight.pow(2).sum()

    fit(model, blobs(64), blobs(32, 1), 3, TrainConfig(epochs=1, batch_size=32), regularizer=reg)
    assert len(calls) == 2


def test_score_logits_metrics_by_hand():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [3.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    labels = torch.tensor([0, 2, 1, 2])
    result = score_logits(logits, labels, 3)
    assert result.top1 == 0.5
    assert result.confusion == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    assert result.per_class_accuracy == [1.0, 0.0, 0.5]
    assert result.top5 == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"epochs": -1}, {"lr": 0}, {"batch_size": 0}, {"optimizer": "lamb"}, {"schedule": "step"}],
)
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ConfigError):
        TrainConfig(**kwargs)


class _OwnLoss(nn.Module):
    """A model that brings its own training loss (as capsule networks bring the margin loss)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.calls = 0

    def forward(self, x):
        return self.fc(x)

    def training_loss(self, outputs, target, inputs):
        self.calls += 1
        return (outputs.softmax(1) - F.one_hot(target, 3).float()).pow(2).sum(1).mean()


def test_fit_uses_the_models_own_training_loss():
    from axdnn.train.loop import loss_for

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    data = TensorDataset(x, y)
    model = _OwnLoss()
    history = fit(model, data, data, 3, TrainConfig(epochs=2, batch_size=16))
    assert model.calls == 8
    assert history.epochs[-1].train_loss < 1.0
    plain = nn.Linear(4, 3)
    assert loss_for(plain).__name__ == "cross_entropy"
