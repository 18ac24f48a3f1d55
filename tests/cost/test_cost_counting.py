"""Operation counting: hand-computed MACs, functional ops, attribution, skipped MACs, JSON."""

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from axdnn.cost import CostReport, LayerCost, OpCount, count_ops, register_module_counter
from axdnn.errors import AxError, ConfigError, ShapeError


def only(report: CostReport) -> LayerCost:
    assert len(report.layers) == 1, report.names()
    return report.layers[0]


def test_conv_stride_padding_dilation_groups():
    # Hout = floor((9 + 2*1 - 2*(3-1) - 1) / 2 + 1) = 4; MACs = 6*4*4 * (4/2) * 3*3
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2)
    layer = only(count_ops(conv, (4, 9, 9)))
    assert layer.kind == "conv2d"
    assert layer.output_shape == (1, 6, 4, 4)
    assert layer.macs == 1728
    assert (layer.in_channels, layer.out_channels, layer.kernel, layer.groups) == (4, 6, (3, 3), 2)
    assert layer.params == 6 * 2 * 9 + 6
    assert layer.weight_elems == 6 * 2 * 9
    assert (layer.input_elems, layer.output_elems) == (4 * 81, 6 * 16)


def test_conv_rectangular_kernel_and_padding():
    # H: (7 + 2 - 3)/1 + 1 = 7; W: (8 + 4 - 5)/2 + 1 = 4 (floor); MACs = 2*7*4*3*3*5
    conv = nn.Conv2d(3, 2, (3, 5), stride=(1, 2), padding=(1, 2), bias=False)
    layer = only(count_ops(conv, (3, 7, 8)))
    assert layer.output_shape == (1, 2, 7, 4)
    assert layer.macs == 2 * 7 * 4 * 3 * 15
    assert layer.params == layer.weight_elems == 2 * 3 * 15


def test_depthwise_conv():
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    layer = only(count_ops(conv, (8, 5, 5)))
    assert layer.macs == 8 * 25 * 1 * 9
    assert layer.groups == 8


def test_conv1d():
    # Lout = floor((10 + 2 - 3 - 1)/2 + 1) = 5; MACs = 5 * 5 * 3 * 4
    layer = only(count_ops(nn.Conv1d(3, 5, 4, stride=2, padding=1), (3, 10)))
    assert (layer.kind, layer.macs, layer.kernel) == ("conv1d", 300, (4,))


def test_conv_transpose2d():
    # every input element meets Cout/groups * kh*kw weights: 2*3*3 inputs * 4 * 2*2
    deconv = nn.ConvTranspose2d(2, 4, 2, stride=2)
    layer = only(count_ops(deconv, (2, 3, 3)))
    assert layer.kind == "conv_transpose2d"
    assert layer.macs == 18 * 4 * 4


def test_linear_over_leading_dims():
    layer = only(count_ops(nn.Linear(7, 3), (5, 4, 7)))
    assert layer.macs == 5 * 4 * 7 * 3
    assert (layer.input_elems, layer.output_elems) == (140, 60)
    assert (layer.in_channels, layer.out_channels) == (7, 3)
    assert layer.params == 24 and layer.weight_elems == 21


@settings(max_examples=25, deadline=None)
@given(
    cin_g=st.integers(1, 3),
    cout_g=st.integers(1, 3),
    groups=st.integers(1, 3),
    k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dil=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    size=st.tuples(st.integers(7, 10), st.integers(7, 10)),
)
def test_conv_macs_match_documented_formula(cin_g, cout_g, groups, k, stride, pad, dil, size):
    cin, cout = cin_g * groups, cout_g * groups
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dil, groups=groups)
    out = [(size[i] + 2 * pad[i] - dil[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(2)]
    expected = cout * out[0] * out[1] * cin_g * k[0] * k[1]
    assert count_ops(conv, (cin, *size)).total_macs == expected


class Mixer(nn.Module):
    """Functional ops inside forward, plus one child Linear module."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 6)
        self.w = nn.Parameter(torch.randn(6, 3))
        self.kernel = nn.Parameter(torch.randn(2, 1, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 4, 6)
        x = self.proj(x)
        s = x @ x.transpose(-1, -2)  # (B,4,4): 16 outputs * K=6 = 96
        y = torch.bmm(s, x)  # (B,4,6): 24 * K=4 = 96
        z = torch.einsum("bij,jk->bik", y, self.w)  # b=1,i=4,j=6,k=3: 72
        t = torch.matmul(z, z.transpose(-1, -2))  # (B,4,4): 16 * 3 = 48
        u = F.linear(x, self.w.t())  # (B,4,3): 12 * 6 = 72
        img = t.unsqueeze(1)  # (B,1,4,4)
        v = F.conv2d(img, self.kernel, padding=1)  # (B,2,4,4): 32 * 1 * 9 = 288
        return u.sum() + v.sum()


def test_functional_ops_attributed_to_parent_in_call_order():
    model = nn.Sequential(nn.Identity(), Mixer())
    report = count_ops(model, (4, 6))
    macs = {layer.name: layer.macs for layer in report.layers}
    assert macs == {
        "1.proj": 4 * 36,
        "1.matmul#0": 96,
        "1.bmm#0": 96,
        "1.einsum#0": 72,
        "1.matmul#1": 48,
        "1.linear#0": 72,
        "1.conv2d#0": 288,
    }
    kinds = {layer.name: layer.kind for layer in report.layers}
    assert kinds["1.einsum#0"] == "einsum" and kinds["1.linear#0"] == "linear"
    # a parameter operand is the op's weight; two activation operands are both inputs
    einsum = report.layer("1.einsum#0")
    assert einsum.weight_elems == 18 and einsum.params == 18 and einsum.input_elems == 24
    assert report.layer("1.matmul#0").input_elems == 48
    assert report.layer("1.matmul#0").weight_elems == 0
    conv = report.layer("1.conv2d#0")
    assert (conv.in_channels, conv.out_channels, conv.kernel, conv.groups) == (1, 2, (3, 3), 1)
    assert report.total_params == sum(p.numel() for p in model.parameters())


def test_root_level_functional_op_name():
    class Root(nn.Module):
        def forward(self, x):
            return torch.mm(x, x.t())

    layer = only(count_ops(Root(), (3,)))  # (1, 3) @ (3, 1): 1 output * K=3
    assert (layer.name, layer.kind, layer.macs) == ("mm#0", "mm", 3)
    # (2, 3) @ (3, 2): 4 outputs * 3 = 12 for the batch, 6 per sample
    assert only(count_ops(Root(), (3,), batch_size=2)).macs == 6


def test_addmm_baddbmm_and_sdpa():
    class Ops(nn.Module):
        def forward(self, x):  # x: (B, 2, 4, 8)
            a = torch.addmm(torch.zeros(3, 5), torch.ones(3, 4), torch.ones(4, 5))  # 15*4
            b = torch.baddbmm(torch.zeros(2, 3, 5), torch.ones(2, 3, 4), torch.ones(2, 4, 5))
            k = torch.ones(x.shape[0], 2, 5, 8)
            v = torch.ones(x.shape[0], 2, 5, 6)
            o = F.scaled_dot_product_attention(x, k, v)  # 2 heads * L4 * S5 * (8 + 6)
            return a.sum() + b.sum() + o.sum()

    macs = {layer.name: layer.macs for layer in count_ops(Ops(), (2, 4, 8)).layers}
    assert macs == {"addmm#0": 60, "baddbmm#0": 2 * 15 * 4, "sdpa#0": 2 * 4 * 5 * 14}


def test_einsum_ellipsis_list_form_and_single_operand():
    class Ein(nn.Module):
        def forward(self, x):  # x: (B, 2, 3, 4)
            y = torch.ones(4, 5)
            a = torch.einsum("...ij,jk->...ik", x, y)  # B=1,2 ellipsis; i3 j4 k5 -> 120
            b = torch.einsum("ij,jk", [y.t(), y])  # i5 j4 k5 -> 100
            c = torch.einsum("ii->i", torch.ones(3, 3))  # one operand: no products
            return a.sum() + b.sum() + c.sum()

    macs = {layer.name: layer.macs for layer in count_ops(Ein(), (2, 3, 4)).layers}
    assert macs == {"einsum#0": 120, "einsum#1": 100, "einsum#2": 0}


def test_conv_and_linear_modules_not_double_counted():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    report = count_ops(model, (1, 6, 6))
    assert report.names() == ["0", "2"]
    assert [layer.kind for layer in report.layers] == ["conv2d", "linear"]
    assert report.total_macs == 2 * 16 * 9 + 32 * 3


def test_repeated_module_is_one_record():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.fc(x)) @ torch.eye(4))

    report = count_ops(Twice(), (4,))
    fc = report.layer("fc")
    assert (fc.calls, fc.macs, fc.input_elems) == (2, 32, 8)
    assert report.layer("matmul#0").macs == 16


def test_per_sample_figures_do_not_depend_on_batch_size():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 25, 2))
    one, four = count_ops(model, (3, 5, 5)), count_ops(model, (3, 5, 5), batch_size=4)
    assert [x.macs for x in one.layers] == [x.macs for x in four.layers]
    assert [x.output_elems for x in one.layers] == [x.output_elems for x in four.layers]
    assert four.layers[0].input_shape == (4, 3, 5, 5)


def test_training_mode_restored_and_hooks_removed():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout(0.5))
    model.train()
    count_ops(model, (1, 5, 5))
    assert all(m.training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    model.eval()
    count_ops(model, (1, 5, 5))
    assert not any(m.training for m in model.modules())


def test_counting_runs_without_grad_on_zeros():
    seen = {}

    class Probe(nn.Module):
        def forward(self, x):
            seen["grad"] = torch.is_grad_enabled()
            seen["sum"] = float(x.abs().sum())
            seen["training"] = self.training
            return x

    count_ops(Probe().train(), (2, 2), meta=False)
    assert seen == {"grad": False, "sum": 0.0, "training": False}


def test_registered_module_counter_suppresses_inner_ops():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(3, 3)

        def forward(self, x):
            return self.inner(x) @ torch.eye(3)

    register_module_counter(Block, lambda m, args, kwargs, out: OpCount(kind="block", macs=7))
    report = count_ops(nn.Sequential(Block()), (3,))
    layer = only(report)
    assert (layer.name, layer.kind, layer.macs, layer.params) == ("0", "block", 7, 12)
    with pytest.raises(ConfigError, match="nn.Module subclass"):
        register_module_counter(int, lambda m, a, k, o: OpCount("x", 0))  # type: ignore[arg-type]


def test_skipped_macs():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 3))
    report = count_ops(model, (1, 6, 6))
    assert report.total_skipped_macs == 0
    assert report.layers[0].effective_macs == report.layers[0].macs == 288
    skipped = report.with_skipped({"0": 100, "2": 10.4})
    assert [x.skipped_macs for x in skipped.layers] == [100, 10]
    assert skipped.layer("0").effective_macs == 188
    assert skipped.total_skipped_macs == 110
    assert skipped.total_effective_macs == 288 + 96 - 110
    assert report.total_skipped_macs == 0  # the original is untouched
    by_fn = report.with_skipped(lambda name: 5 if name == "2" else None)
    assert [x.skipped_macs for x in by_fn.layers] == [0, 5]
    with pytest.raises(ConfigError, match="'nope'"):
        report.with_skipped({"nope": 1})
    with pytest.raises(ConfigError, match=r"outside \[0, 288\]"):
        report.with_skipped({"0": 289})
    with pytest.raises(ConfigError, match="outside"):
        report.with_skipped({"2": -1})


def test_report_json_round_trip():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(32, 3))
    report = count_ops(model, (1, 6, 6)).with_skipped({"0": 3})
    d = json.loads(json.dumps(report.to_dict()))
    assert d["total_macs"] == 288 + 96 and d["total_skipped_macs"] == 3
    assert d["layers"][0]["effective_macs"] == 285
    back = CostReport.from_dict(d)
    assert back == report
    with pytest.raises(ConfigError, match="layers"):
        CostReport.from_dict({"total_params": 1})
    with pytest.raises(ConfigError, match="name, kind and macs"):
        LayerCost.from_dict({"name": "x"})


def test_bad_inputs_raise_shape_errors():
    with pytest.raises(ShapeError, match=r"\(3, 5, 5\)") as info:
        count_ops(nn.Linear(4, 2), (3, 5, 5))
    assert isinstance(info.value, AxError)
    with pytest.raises(ShapeError, match="non-empty"):
        count_ops(nn.Linear(4, 2), ())
    with pytest.raises(ShapeError, match="batch_size"):
        count_ops(nn.Linear(4, 2), (4,), batch_size=0)


def test_multihead_attention_counted_as_one_layer():
    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x)[0]

    layer = only(count_ops(Attn(), (5, 8)))
    # projections 4 * L*E*E = 4*5*64; QK^T and attn x V: 2 * L*S*E = 2*5*5*8
    assert (layer.name, layer.kind, layer.macs) == ("attn", "mha", 1280 + 400)
    assert layer.weight_elems == 3 * 64 + 64


def test_transformer_layer_is_not_hidden_by_the_fast_path():
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    macs = {x.name: x.macs for x in count_ops(layer, (5, 8)).layers}
    assert macs == {"self_attn": 1680, "linear1": 5 * 8 * 16, "linear2": 5 * 16 * 8}


@pytest.mark.parametrize(
    ("module", "shape", "macs"),
    [
        # per step and direction: gates * H * (I + H); layer 2 of a biLSTM sees 2H inputs
        (
            nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True),
            (5, 3),
            5 * (2 * 4 * 4 * (3 + 4) + 2 * 4 * 4 * (8 + 4)),
        ),
        (nn.GRU(3, 4), (5, 3), 5 * 3 * 4 * 7),
        (nn.RNN(3, 4, batch_first=True), (5, 3), 5 * 4 * 7),
        (nn.LSTM(3, 4, proj_size=2, batch_first=True), (5, 3), 5 * (4 * 4 * (3 + 2) + 4 * 2)),
        (nn.LSTMCell(3, 4), (3,), 4 * 4 * 7),
        (nn.GRUCell(3, 4), (3,), 3 * 4 * 7),
    ],
)
@pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")
def test_recurrent_layers(module, shape, macs):
    layer = only(count_ops(module, shape))
    assert layer.macs == macs
    assert layer.weight_elems == sum(
        p.numel() for n, p in module.named_parameters() if n.startswith("weight")
    )


def test_mixed_training_modes_restored():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    model.train()
    model[1].eval()  # e.g. frozen batch-norm statistics
    count_ops(model, (1, 5, 5))
    assert model.training and model[0].training and not model[1].training


class DataDependent(nn.Module):
    """Control flow on values: cannot run shape-only, so counting falls back to real tensors."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if float(x.sum()) == 0.0:
            return self.fc(x)
        return self.fc(x) @ torch.eye(2)


@pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")
@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (nn.Sequential(nn.Identity(), Mixer()), (4, 6)),
        (nn.Sequential(nn.Conv2d(3, 4, 3, groups=1), nn.BatchNorm2d(4), nn.ReLU()), (3, 6, 6)),
        (nn.LSTM(3, 4, num_layers=2, batch_first=True), (5, 3)),
        (nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), (5, 8)),
    ],
)
def test_shape_only_run_matches_real_run(model, shape):
    assert count_ops(model, shape, meta=True) == count_ops(model, shape, meta=False)


def test_value_dependent_model_falls_back_to_real_run():
    report = count_ops(DataDependent(), (4,))  # zeros: the branch without the matmul
    assert report.names() == ["fc"]
    assert report == count_ops(DataDependent(), (4,), meta=False)
    with pytest.raises(ShapeError):
        count_ops(DataDependent(), (4,), meta=True)
