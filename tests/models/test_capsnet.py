"""CapsNet: sized by its input, margin and reconstruction losses in the training loop, and every
named capsule operation a functional site that can be injected alone."""

from __future__ import annotations

import copy
import fnmatch

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from axdnn.cost import count_ops
from axdnn.data import load_dataset
from axdnn.errors import ModelError
from axdnn.inject import FaultPlan, Injector, SiteFaults, list_op_sites, parse_error_model
from axdnn.inject.sites import Site, site_shapes
from axdnn.models import build_model
from axdnn.models.capsnet import OPERATIONS, CapsNet, margin_loss
from axdnn.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from axdnn.train import TrainConfig, evaluate, fit

LEAVES = {
    "conv1": "conv1",
    "primary": "primary.conv",
    "votes": "digit.votes",
    "routing_softmax": "digit.softmax",
    "weighted_sum": "digit.weighted",
    "squash": "digit.squash",
    "agreement": "digit.agreement",
    "lengths": "lengths",
}


def small(iterations: int = 3) -> CapsNet:
    torch.manual_seed(0)
    return build_model("capsnet", 1, 10, image_size=8, routing_iterations=iterations).eval()


def expand(model: nn.Module, patterns: tuple[str, ...], x: torch.Tensor) -> list[Site]:
    """Sites the patterns name: module names, or functional sites seen in one forward."""
    ops = list_op_sites(model, x[:1])
    modules = [n for n, _ in model.named_modules()]
    names = [
        n for p in patterns for n in (ops if "#" in p else modules) if fnmatch.fnmatchcase(n, p)
    ]
    return [Site(n) for n in names]


def noisy(model, sites, spec: str, x: torch.Tensor, record: dict) -> torch.Tensor:
    """Forward with `spec` noise at every site on every sample; leaf outputs go to `record`."""
    shapes = site_shapes(model, sites, x[:1])
    rows, trials = torch.arange(len(x)), np.arange(len(x))
    plan = FaultPlan({i: SiteFaults(rows, trials) for i in range(len(sites))})
    with Injector(model, sites, parse_error_model(spec), shapes, seed=1) as injector:
        injector.arm(plan)
        with torch.no_grad():
            return recorded(model, x, record, lambda: model(x))


def recorded(model, x, record, run):
    handles = []
    for name in LEAVES.values():
        module = model.get_submodule(name)
        handles.append(
            module.register_forward_hook(
                lambda _m, _a, out, name=name: record.setdefault("calls", []).append(
                    (name, out.detach().clone())
                )
            )
        )
    try:
        return run()
    finally:
        for h in handles:
            h.remove()


def test_sized_by_input_lazily_and_by_argument():
    lazy = build_model("capsnet", 1, 10)
    assert not lazy.built and not list(lazy.parameters())
    out = lazy(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 10) and lazy.config.conv_kernel == 3
    big = build_model("capsnet", 1, 10, image_size=28)
    assert big.config.conv_kernel == 9 and big.digit.votes.weight.shape == (8 * 6 * 6, 8, 10 * 16)
    lengths = big.eval()(torch.randn(2, 1, 28, 28))
    assert ((lengths >= 0) & (lengths < 1)).all()  # squashed lengths


def test_too_small_input_and_bad_iterations_are_clear_errors():
    with pytest.raises(ModelError, match="too small"):
        build_model("capsnet", 1, 10, image_size=4)
    with pytest.raises(ModelError, match="routing_iterations=0"):
        build_model("capsnet", 1, 10, routing_iterations=0)


def test_lazy_model_loads_its_checkpoint(tmp_path):
    model = small()
    x = torch.randn(4, 1, 8, 8)
    path = tmp_path / "caps.pt"
    save_checkpoint(
        path,
        Checkpoint("capsnet", {"in_channels": 1, "num_classes": 10}, model.state_dict()),
    )
    rebuilt = load_checkpoint(path).build()  # built from the stored image size
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_margin_loss_known_values():
    target = torch.tensor([2])
    perfect = torch.zeros(1, 10).index_fill_(1, target, 0.95)
    assert margin_loss(perfect, target).item() == 0.0
    lengths = torch.full((1, 10), 0.5)  # present: (0.9-0.5)^2, absent: 9 * 0.5 * 0.4^2
    assert margin_loss(lengths, target).item() == pytest.approx(0.16 + 9 * 0.5 * 0.16)


def test_training_loss_adds_reconstruction_and_clears_its_state():
    model = small().train()
    x, y = torch.randn(5, 1, 8, 8), torch.randint(0, 10, (5,))
    out = model(x)
    copy.deepcopy(model)  # the stashed capsules never block a copy
    total = model.training_loss(out, y, x)
    assert model._stash is None
    assert total.item() > margin_loss(out, y).item()
    total.backward()
    assert model.decoder[0].weight.grad is not None and model.conv1.weight.grad is not None
    bare = build_model("capsnet", 1, 10, image_size=8, decoder=False).train()
    out = bare(x)
    assert bare.training_loss(out, y, x).item() == pytest.approx(margin_loss(out, y).item())


def test_every_named_operation_is_a_site_with_one_per_routing_iteration():
    model = small(iterations=3)
    x = torch.randn(2, 1, 8, 8)
    counts = {op: len(expand(model, pats, x)) for op, pats in OPERATIONS.items()}
    assert counts == {
        "conv1": 1,
        "primary": 1,
        "votes": 1,
        "routing_softmax": 3,
        "weighted_sum": 3,
        "squash": 3,
        "agreement": 2,
        "lengths": 1,
    }
    macs = {r.name: r.macs for r in count_ops(model, (1, 8, 8)).layers}
    votes = model.digit.votes.weight.numel()
    assert macs["digit.votes.matmul#0"] == votes  # one product per weight and sample
    assert macs["digit.weighted.matmul#2"] == votes // 4 and "digit.agreement.matmul#1" in macs


@pytest.mark.parametrize("op", list(OPERATIONS))
def test_each_operation_can_be_injected_alone(op):
    model = small()
    x = load_dataset("digits", seed=0).test.tensors[0][:6]
    clean, hit = {}, {}
    with torch.no_grad():
        base = recorded(model, x, clean, lambda: model(x))
    out = noisy(model, expand(model, OPERATIONS[op], x), "gaussian:0.5,rel=std", x, hit)
    first = next(
        i for i, (a, b) in enumerate(zip(clean["calls"], hit["calls"], strict=True))
        if not torch.equal(a[1], b[1])
    )  # fmt: skip
    assert clean["calls"][first][0] == LEAVES[op]  # the op's own output is the first to change
    assert not torch.equal(out, base)


def test_zero_noise_changes_nothing():
    model = small()
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        base = model(x)
    sites = [s for pats in OPERATIONS.values() for s in expand(model, pats, x)]
    assert torch.equal(noisy(model, sites, "gaussian:0,rel=std", x, {}), base)


class TinyCaps(nn.Module):
    """A user's own capsule layer: the same functional calls, other module names."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3)
        self.routing = UserRouting()

    def forward(self, x):
        u = self.stem(x).flatten(2).transpose(1, 2)  # (B, 36, 8) input capsules
        return torch.linalg.vector_norm(self.routing(u), dim=-1)


class UserRouting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(36, 10, 4, 8) * 0.1)

    def forward(self, u):
        u_hat = torch.matmul(self.w, u[:, :, None, :, None]).squeeze(-1).transpose(1, 2)
        b = torch.zeros(u_hat.shape[:3])
        for _ in range(2):
            c = torch.softmax(b, dim=1)
            v = torch.matmul(c.unsqueeze(2), u_hat).squeeze(2)
            b = b + torch.matmul(u_hat, v.unsqueeze(-1)).squeeze(-1)
        return v


def test_a_users_capsule_model_exposes_the_same_kind_of_sites():
    model = TinyCaps().eval()
    sites = list_op_sites(model, torch.randn(1, 1, 8, 8))
    assert {"routing.softmax#0", "routing.softmax#1", "routing.matmul#0"} <= set(sites)
    macs = {r.name for r in count_ops(model, (1, 8, 8)).layers}
    assert {"routing.matmul#0", "routing.matmul#1", "routing.matmul#2"} <= macs
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        base = model(x)
    changed = noisy_user(model, [Site("routing.softmax#1")], x)
    assert not torch.equal(changed, base)


def noisy_user(model, sites, x):
    shapes = site_shapes(model, sites, x[:1])
    rows, trials = torch.arange(len(x)), np.arange(len(x))
    em = parse_error_model("gaussian:0.5,rel=std")
    with Injector(model, sites, em, shapes, seed=0) as injector, torch.no_grad():
        injector.arm(FaultPlan({i: SiteFaults(rows, trials) for i in range(len(sites))}))
        return model(x)


def test_training_reduces_the_loss():
    bundle = load_dataset("digits", seed=0)
    model = small().train()
    x, y = bundle.train.tensors[0][:256], bundle.train.tensors[1][:256]
    with torch.no_grad():
        before = model.training_loss(model(x), y, x).item()
    subset = TensorDataset(x, y)
    fit(model, subset, subset, 10, TrainConfig(epochs=3, lr=5e-3, seed=0))
    model.train()
    with torch.no_grad():
        after = model.training_loss(model(x), y, x).item()
    assert after < 0.5 * before


@pytest.mark.slow
def test_capsnet_reaches_97_percent_on_digits():
    bundle = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = build_model("capsnet", 1, 10)
    model(bundle.train.tensors[0][:1])  # build before the optimizer sees the parameters
    fit(model, bundle.train, bundle.val, 10, TrainConfig(epochs=15, lr=5e-3, seed=0))
    assert evaluate(model, bundle.test, 10).top1 >= 0.97
