"""Zoo models: every one builds and runs at its sizes, keeps its published shape and MAC count,
and exposes every multiplication as its own nn.Conv2d / nn.Linear module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.fx
from torch import nn

from axdnn.models import build_model, default_lr, list_models

ZOO = {
    "digits_cnn",
    "lenet5",
    "resnet20",
    "resnet32",
    "resnet56",
    "vgg11",
    "vgg16",
    "alexnet_cifar",
    "squeezenet_cifar",
    "mobilenetv2_cifar",
}
SMALL_INPUT = ["digits_cnn", "lenet5"]


def count_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Reference MAC count: conv Cout*Hout*Wout*(Cin/groups)*kh*kw, linear in*out."""
    total = 0

    def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            total += out[0].numel() * (mod.in_channels // mod.groups) * kh * kw
        else:
            total += mod.in_features * mod.out_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in handles:
        h.remove()
    return total


def test_registry_holds_the_zoo() -> None:
    assert ZOO <= set(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 32, 32)])
def test_forward_shape_and_gradients(name: str, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(name, in_channels=shape[0], num_classes=7)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, f"{name}: parameters outside the forward pass: {unused}"


@pytest.mark.parametrize("name", SMALL_INPUT)
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 16, 16), (1, 28, 28), (3, 12, 20)])
def test_small_models_take_small_inputs(name: str, shape: tuple[int, int, int]) -> None:
    model = build_model(name, in_channels=shape[0], num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(3, *shape))
    assert out.shape == (3, 10)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_in_channels_reach_the_first_conv(name: str) -> None:
    model = build_model(name, in_channels=5, num_classes=3)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 5
    last = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)][-1]
    assert getattr(last, "out_features", getattr(last, "out_channels", None)) == 3


@pytest.mark.parametrize("name", sorted(ZOO))
def test_each_module_runs_once_and_relus_are_modules(name: str) -> None:
    """Layers are replaceable by name: every conv/linear/ReLU instance is called exactly once."""
    model = build_model(name, in_channels=3, num_classes=10).eval()
    calls: dict[str, int] = {}
    handles = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d | nn.Linear | nn.ReLU):
            calls[mod_name] = 0
            handles.append(
                mod.register_forward_hook(
                    lambda *_, key=mod_name: calls.__setitem__(key, calls[key] + 1)
                )
            )
        if isinstance(mod, nn.ReLU):
            assert not mod.inplace, f"{name}.{mod_name} is an in-place ReLU"
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert calls and all(v == 1 for v in calls.values()), {k: v for k, v in calls.items() if v != 1}
    assert any(isinstance(m, nn.ReLU) for m in model.modules())


@pytest.mark.parametrize(
    ("name", "target", "tolerance"),
    [("resnet20", 40.6e6, 0.02), ("resnet56", 125.5e6, 0.02), ("vgg16", 313e6, 0.03)],
)
def test_macs_match_published_figures(name: str, target: float, tolerance: float) -> None:
    macs = count_macs(build_model(name, 3, 10), (3, 32, 32))
    assert abs(macs - target) <= tolerance * target, f"{name}: {macs} MACs vs {target}"


def test_resnet_macs_grow_with_depth() -> None:
    m20, m32, m56 = (
        count_macs(build_model(f"resnet{d}", 3, 10), (3, 32, 32)) for d in (20, 32, 56)
    )
    # n grows by 2 (20 -> 32) then by 4 (32 -> 56); each extra block per stage costs the same
    assert m32 > m20 and m56 - m32 == 2 * (m32 - m20)


@pytest.mark.parametrize(
    ("name", "depth", "params"),
    [
        ("resnet20", 20, 0.27e6),
        ("resnet32", 32, 0.46e6),
        ("resnet56", 56, 0.85e6),
    ],
)
def test_resnet_depth_and_parameters(name: str, depth: int, params: float) -> None:
    """Depth 6n+2 counts 3x3 convs plus the fc; parameter counts from He et al. 2016, table 6."""
    model = build_model(name, 3, 10)
    convs3 = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    projections = [
        m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
    ]
    assert len(convs3) + 1 == depth
    assert [(p.in_channels, p.out_channels, p.stride) for p in projections] == [
        (16, 32, (2, 2)),
        (32, 64, (2, 2)),
    ]
    assert {m.out_channels for m in convs3} == {16, 32, 64}
    n_params = sum(p.numel() for p in model.parameters())
    assert abs(n_params - params) <= 0.02 * params


@pytest.mark.parametrize(
    ("name", "widths"),
    [
        ("vgg11", [64, 128, 256, 256, 512, 512, 512, 512]),
        ("vgg16", [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]),
    ],
)
def test_vgg_configuration(name: str, widths: list[int]) -> None:
    model = build_model(name, 3, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == widths
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == len(widths)
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(512, 10)]


def test_lenet5_classic_shape() -> None:
    """LeCun et al. 1998: C1 6@5x5, C3 16@5x5, F5 120, F6 84; 61,706 parameters at 1x28x28."""
    model = build_model("lenet5", 1, 10)
    convs = [(m.out_channels, m.kernel_size) for m in model.modules() if isinstance(m, nn.Conv2d)]
    fcs = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert convs == [(6, (5, 5)), (16, (5, 5))]
    assert fcs == [(400, 120), (120, 84), (84, 10)]
    assert sum(p.numel() for p in model.parameters()) == 61706


def test_squeezenet_and_mobilenet_structure() -> None:
    sq = build_model("squeezenet_cifar", 3, 10)
    fires = [m for m in sq.modules() if type(m).__name__ == "Fire"]
    assert len(fires) == 8
    assert [f.expand1x1.out_channels + f.expand3x3.out_channels for f in fires] == [
        128,
        128,
        256,
        256,
        384,
        384,
        512,
        512,
    ]
    mb = build_model("mobilenetv2_cifar", 3, 10)
    blocks = [m for m in mb.modules() if type(m).__name__ == "InvertedResidual"]
    assert len(blocks) == 17
    assert sum(b.use_residual for b in blocks) == 10
    depthwise = [m for m in mb.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 17 and all(m.groups == m.in_channels for m in depthwise)
    feats = nn.Sequential(mb.conv1, mb.layers)
    assert feats(torch.zeros(1, 3, 32, 32)).shape[-2:] == (4, 4)


def test_same_seed_same_weights() -> None:
    torch.manual_seed(3)
    a = build_model("resnet20", 3, 10).state_dict()
    torch.manual_seed(3)
    b = build_model("resnet20", 3, 10).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_models_trace_with_torch_fx(name: str) -> None:
    """No shape-dependent Python control flow, so graph-level rooms can trace every zoo model."""
    model = build_model(name, 3, 10).eval()
    graph = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(graph(x), model(x))


def _doc_rows():
    """(model, has batch norm, default lr) from docs/models.md's table."""
    doc = Path(__file__).parents[2] / "docs" / "models.md"
    rows = []
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), cells[1] == "yes", float(cells[3])))
    return rows


def test_models_doc_says_which_models_have_batch_norm():
    rows = _doc_rows()
    assert sorted(name for name, _, _ in rows) == list_models()
    for name, documented_bn, documented_lr in rows:
        model = build_model(name, in_channels=3, num_classes=10)
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        assert has_bn == documented_bn, name
        assert default_lr(name) == documented_lr, name
