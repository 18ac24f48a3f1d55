import pytest
import torch
import torch.nn.functional as F
from torch import nn

from axdnn.errors import InjectionError
from axdnn.inject import (
    Injector,
    Site,
    list_op_sites,
    op_name,
    parse_error_model,
    parse_site,
    site_shapes,
)
from axdnn.inject.injector import FaultPlan, SiteFaults
from axdnn.models import build_model


class Attention(nn.Module):
    """Functional ops in forward code: matmul, softmax, add, einsum."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(4, 4)

    def forward(self, x):
        q = self.q(x)
        scores = torch.softmax(q @ x.transpose(1, 2), dim=-1)
        out = torch.einsum("bij,bjd->bid", scores, x)
        return out + x


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.att = Attention()
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        h = self.att(x)
        h = F.relu(h) + 1.0
        return self.head(h.mean(dim=1))


@pytest.mark.parametrize(
    "text,site",
    [
        ("features.0", Site("features.0")),
        ("features.0:input", Site("features.0", "input")),
        ("fc:weight[2]", Site("fc", "weight", 2)),
        ("features.3[5]", Site("features.3", "output", 5)),
        ("layer1.0.add#0", Site("layer1.0.add#0")),
    ],
)
def test_parse_site(text, site):
    assert parse_site(text) == site
    assert str(site) == text


@pytest.mark.parametrize("bad", ["a:b:c", "x[y]", "fc:bias", "softmax#0:input"])
def test_bad_sites(bad):
    with pytest.raises(InjectionError):
        parse_site(bad)


def test_op_names_are_canonical():
    assert op_name(torch.Tensor.__radd__) == "add"
    assert op_name(torch.add) == "add"
    assert op_name(torch.Tensor.add_) == "add"
    assert op_name(torch.Tensor.__matmul__) == "matmul"
    assert op_name(torch.Tensor.__getitem__) is None


def test_functional_sites_have_stable_names():
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(2, 5, 4)
    first = list_op_sites(net, x)
    assert list_op_sites(net, x) == first
    for name in (
        "att.matmul#0",
        "att.softmax#0",
        "att.einsum#0",
        "att.add#0",
        "relu#0",
        "add#0",
        "mean#0",
        "head.linear#0",
    ):
        assert name in first, name
    assert first["att.softmax#0"] == (5, 5)


def test_resnet_residual_adds_are_named_per_block():
    sites = list_op_sites(build_model("resnet20", 3, 10).eval(), torch.randn(1, 3, 32, 32))
    adds = [s for s in sites if s.endswith(".add#0")]
    assert len(adds) == 9 and adds[0] == "layer1.0.add#0"


def test_injecting_at_a_functional_site_changes_only_that_op():
    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(3, 5, 4)
    site = Site("att.softmax#0")
    shapes = site_shapes(net, [site], x[:1])
    seen = {}
    with torch.no_grad():
        clean = net(x)
        injector = Injector(net, [site], parse_error_model("value:0"), shapes, scope="all")
        with injector:
            injector.arm(FaultPlan({0: SiteFaults(torch.tensor([1]), torch.tensor([0]).numpy())}))
            hook = net.att.register_forward_hook(lambda m, a, out: seen.setdefault("att", out))
            faulty = net(x)
            hook.remove()
        after = net(x)
    # row 1's attention weights were all zeroed: its einsum output is zero, so att(x) = x there
    assert torch.allclose(seen["att"][1], x[1])
    assert torch.equal(faulty[0], clean[0]) and torch.equal(faulty[2], clean[2])
    assert not torch.equal(faulty[1], clean[1])
    assert torch.equal(after, clean)


def test_unknown_sites_are_errors():
    net = Net().eval()
    with pytest.raises(InjectionError, match="no module"):
        site_shapes(net, [Site("nope")], torch.randn(1, 5, 4))
    with pytest.raises(InjectionError, match="no such functional op"):
        site_shapes(net, [Site("att.softmax#3")], torch.randn(1, 5, 4))
    with pytest.raises(InjectionError, match="out of range"):
        site_shapes(net, [Site("head", "output", 9)], torch.randn(1, 5, 4))
