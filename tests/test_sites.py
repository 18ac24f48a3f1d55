"""One naming of functional sites for plans, injection and the cost model (axdnn.sites)."""

import torch
from torch import nn

from axdnn.cost import count_ops
from axdnn.inject import list_op_sites
from axdnn.sites import NOT_HANDLED, SiteHandler, attach, op_name


class Mixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        return torch.softmax(x @ self.w, dim=-1)


class TwiceMixed(nn.Module):
    """A submodule called twice (as capsule routing iterations are)."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = Mixer()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.mix(self.mix(x)) + torch.einsum("bi,ij->bj", x, self.mix.w))


def test_cost_and_injection_name_repeated_calls_alike():
    model = TwiceMixed().eval()
    cost = {r.name for r in count_ops(model, (4,)).layers}
    ops = set(list_op_sites(model, torch.randn(2, 4)))
    assert {"mix.matmul#0", "mix.matmul#1", "einsum#0"} <= cost
    assert {"mix.matmul#0", "mix.matmul#1", "mix.softmax#1", "einsum#0"} <= ops
    functional_cost = cost - {"fc"}
    assert functional_cost <= ops


def test_sdpa_is_short_everywhere():
    assert op_name(torch.nn.functional.scaled_dot_product_attention) == "sdpa"


class _Doubler(SiteHandler):
    def __init__(self, target: str) -> None:
        self.target, self.names = target, []

    def call(self, site, func, args, kwargs):
        self.names.append(site.name)
        if site.name != self.target:
            return NOT_HANDLED
        return 2 * func(*args, **kwargs)  # inner ops of a handler are not sites


def test_a_handler_implements_one_site_and_others_still_see_it():
    model = TwiceMixed().eval()
    x = torch.randn(3, 4)
    plain = model(x)
    doubler = _Doubler("mix.matmul#1")
    with torch.no_grad(), attach(model, doubler), attach(model, SiteHandler()) as mode:
        seen = list_op_sites(model, x)
        out = model(x)
        assert len(mode.handlers) == 2  # list_op_sites joined this mode and left it
    assert "mix.matmul#1" in seen and "mul#0" not in seen
    assert doubler.names.count("mix.matmul#1") == 2
    assert not torch.equal(out, plain)
