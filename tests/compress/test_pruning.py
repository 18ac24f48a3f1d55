"""Structured pruning really slims every zoo model; unstructured masks; criteria; checkpoints."""

import pytest
import torch
from torch import nn

from axdnn.compress import (
    compressed_checkpoint,
    keep_masks,
    prune_layer,
    prune_structured,
    prune_unstructured,
    sparsity,
)
from axdnn.cost import count_ops
from axdnn.errors import CheckpointError, CompressionError
from axdnn.models import build_model
from axdnn.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

SHAPES = {"digits_cnn": (1, 8, 8), "lenet5": (1, 28, 28)}


def _zoo(name):
    shape = SHAPES.get(name, (3, 32, 32))
    torch.manual_seed(0)
    return build_model(name, in_channels=shape[0], num_classes=10).eval(), shape


def test_residual_adds_and_depthwise_groups_stay_coupled():
    model, shape = _zoo("mobilenetv2_cifar")
    pruned, _ = prune_structured(model, shape, 0.5)
    for block in pruned.layers:
        assert block.conv2.groups == block.conv2.in_channels == block.conv2.out_channels
        assert block.conv2.out_channels == block.conv1.out_channels == block.bn2.num_features
        if block.use_residual:
            assert block.conv3.out_channels == block.conv1.in_channels


def test_resnet20_half_the_filters_in_each_block():
    model, shape = _zoo("resnet20")
    pruned, record = prune_structured(model, shape, 0.5)
    for stage, width in ((pruned.layer1, 8), (pruned.layer2, 16), (pruned.layer3, 32)):
        for block in stage:
            assert block.conv1.out_channels == width and block.conv2.out_channels == width
    report = count_ops(pruned, shape)
    assert (report.total_macs, report.total_params) == (record.macs_after, record.params_after)
    assert 3.5 < record.macs_ratio < 4.5  # half the channels on both sides of each conv


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv2_cifar", "squeezenet_cifar", "lenet5"])
def test_pruned_checkpoint_reloads_with_same_outputs(name, tmp_path):
    model, shape = _zoo(name)
    pruned, record = prune_structured(model, shape, 0.5)
    base = Checkpoint(name, {"in_channels": shape[0], "num_classes": 10}, model.state_dict(),
                      input_shape=shape)  # fmt: skip
    path = save_checkpoint(
        tmp_path / "p.pt", compressed_checkpoint(base, pruned, pruning=record.to_dict())
    )
    again = load_checkpoint(path).build()
    x = torch.randn(3, *shape)
    with torch.no_grad():
        assert torch.equal(again(x), pruned.eval()(x))
    report = count_ops(again, shape)  # the cost model agrees with the record
    assert (report.total_macs, report.total_params) == (record.macs_after, record.params_after)


def test_hostile_layer_shapes_are_refused(tmp_path):
    model, shape = _zoo("digits_cnn")
    ck = Checkpoint(
        "digits_cnn",
        {"in_channels": 1, "num_classes": 10},
        model.state_dict(),
        extra={"layer_shapes": {"features.0": {"in": 1, "out": "os.system"}}},
    )
    path = save_checkpoint(tmp_path / "bad.pt", ck)
    with pytest.raises(CheckpointError, match="positive integer channel counts"):
        load_checkpoint(path).build()
    for bad in ({"in": 1, "out": 16}, {"in": 1, "out": 15, "groups": 2}, [1, 16, 1]):
        ck.extra = {"layer_shapes": {"features.0": bad}}
        with pytest.raises(CheckpointError, match="does not fit the model"):
            load_checkpoint(save_checkpoint(tmp_path / "bad.pt", ck)).build()


@pytest.mark.parametrize("criterion", ["l1", "l2", "bn", "taylor"])
def test_criteria_choose_different_filters(criterion, digits):
    model, shape = _zoo("digits_cnn")
    x, y = digits.train.tensors
    pruned, record = prune_structured(model, shape, 0.5, criterion, data=(x[:64], y[:64]))
    assert pruned(torch.randn(1, *shape)).shape == (1, 10)
    assert record.criterion == criterion


def test_l1_keeps_the_largest_filters():
    model, shape = _zoo("digits_cnn")
    conv = model.features[0]
    with torch.no_grad():
        conv.weight[:8] *= 100  # these must survive
    pruned, _ = prune_structured(model, shape, 0.5, "l1")
    kept = pruned.features[0].weight
    assert torch.allclose(kept.abs().sum(), conv.weight[:8].abs().sum())


def test_significance_scores_decide_which_filters_go():
    model, shape = _zoo("digits_cnn")
    first = model.features[0]
    scores = {"features.0": [1.0 if i % 2 else 0.0 for i in range(16)]}
    pruned, _ = prune_structured(model, shape, 0.5, "significance", scores=scores)
    assert torch.equal(pruned.features[0].weight, first.weight[1::2])
    with pytest.raises(CompressionError, match="one score per filter"):
        prune_structured(model, shape, 0.5, "significance", scores={"features.0": [1.0]})


def test_global_and_per_layer_ratios():
    model, shape = _zoo("digits_cnn")
    pruned, rec = prune_structured(model, shape, 0.0, ratios={"features.3": 0.5})
    widths = {w.name: w.after for w in rec.layers}
    assert widths["features.3"] == 16 and widths["features.0"] == 16
    pruned, rec = prune_structured(model, shape, 0.5, global_pruning=True)
    assert rec.params_after < rec.params_before


def test_iterative_schedule_finetunes_after_each_step():
    model, shape = _zoo("digits_cnn")
    seen = []
    pruned, rec = prune_structured(
        model, shape, 0.5, steps=3, finetune=lambda m, step: seen.append((step, _params(m)))
    )
    assert [s for s, _ in seen] == [1, 2, 3]
    assert seen[0][1] > seen[1][1] > seen[2][1] == rec.params_after


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_bad_requests_name_the_value():
    model, shape = _zoo("digits_cnn")
    with pytest.raises(CompressionError, match="1.5"):
        prune_structured(model, shape, 1.5)
    with pytest.raises(CompressionError, match="'nope'"):
        prune_structured(model, shape, 0.5, "nope")
    with pytest.raises(CompressionError, match="needs data"):
        prune_structured(model, shape, 0.5, "taylor")
    with pytest.raises(CompressionError, match="fc2"):
        prune_structured(model, shape, 0.5, ratios={"fc2": 0.5})


def test_torch_pruning_failure_is_a_compression_error():
    """A model Torch-Pruning cannot trace (the forward reads a fixed channel count) is reported
    as a CompressionError naming the model, not a raw traceback."""

    class FixedView(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3)
            self.fc = nn.Linear(8 * 6 * 6, 10)

        def forward(self, x):
            return self.fc(self.conv(x).reshape(-1, 8 * 6 * 6))  # a constant channel count

    with pytest.raises(CompressionError, match="FixedView no longer runs"):
        prune_structured(FixedView(), (1, 8, 8), 0.5)


def test_unstructured_layer_and_global():
    model, _ = _zoo("lenet5")
    masks = prune_unstructured(model, 0.5)
    s = sparsity(model)
    assert all(abs(s[n] - 0.5) < 0.01 for n in masks)
    model, _ = _zoo("lenet5")
    prune_unstructured(model, 0.9, scope="global")
    s = sparsity(model)
    assert abs(s["total"] - 0.9) < 0.001 and s["conv1"] < s["fc1"]  # small layers keep more


def test_masks_survive_finetuning():
    model, shape = _zoo("lenet5")
    masks = prune_unstructured(model, 0.7)
    remove = keep_masks(model, masks)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        loss = model(torch.randn(4, *shape)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model(torch.randn(1, *shape))
    remove()
    assert abs(sparsity(model)["fc1"] - 0.7) < 0.01


def test_prune_layer_structured_zeroes_filters():
    conv = nn.Conv2d(2, 8, 3)
    mask = prune_layer(conv, 0.25, structured=True)
    dead = (conv.weight.abs().flatten(1).sum(1) == 0).sum()
    assert int(dead) == 2 and mask.shape == conv.weight.shape
    with pytest.raises(CompressionError, match="ReLU"):
        prune_layer(nn.ReLU(), 0.5)
