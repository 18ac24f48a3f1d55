"""PACT: forward values on the k-bit grid of [0, alpha], gradients of eqs. 1-3 of Choi et al."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.errors import FormatError
from axdnn.formats import PACT, PactFormat, pact, parse_format


def ref_pact(x: float, alpha: float, k: int) -> float:
    step = alpha / (2**k - 1)
    y = min(max(x, 0.0), alpha)
    return round(y / step) * step


@settings(max_examples=50, deadline=None)
@given(
    k=st.integers(1, 8),
    alpha=st.floats(0.1, 20.0),
    xs=st.lists(st.floats(-50, 50), min_size=1, max_size=30),
)
def test_forward_grid_idempotent_monotonic(k: int, alpha: float, xs: list[float]) -> None:
    fmt = PactFormat(k, alpha)
    x = torch.sort(torch.tensor(xs, dtype=torch.float64)).values
    q = fmt.quantize(x)
    for xi, qi in zip(x.tolist(), q.tolist(), strict=True):
        assert qi == pytest.approx(ref_pact(xi, alpha, k), rel=1e-12, abs=1e-12)
    assert bool((q >= 0).all() and (q <= alpha * (1 + 1e-12)).all())
    levels = q / fmt.step
    assert torch.allclose(levels, levels.round(), atol=1e-9)
    assert torch.equal(fmt.quantize(q), q)
    assert bool((q[1:] >= q[:-1]).all())


def test_gradients_follow_pact_paper() -> None:
    alpha = torch.tensor(2.0, requires_grad=True)
    x = torch.tensor([-1.0, 0.0, 0.7, 1.99, 2.0, 5.0], requires_grad=True)
    up = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    (pact(x, alpha, 3) * up).sum().backward()
    assert x.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 0.0, 0.0]  # x in [0, alpha)
    assert alpha.grad.item() == 11.0  # sum where x >= alpha


def test_module_learns_alpha_and_exposes_format() -> None:
    torch.manual_seed(0)
    act = PACT(bits=4, alpha=1.0)
    x = torch.rand(256) * 4
    opt = torch.optim.SGD(act.parameters(), lr=0.01)
    loss = (act(x) - x.clamp(max=3.0)).pow(2).mean()  # wants alpha to grow towards 3
    loss.backward()
    assert act.alpha.grad.item() < 0
    opt.step()
    assert act.alpha.item() > 1.0
    fmt = act.format
    assert (
        isinstance(fmt, PactFormat) and fmt.k == 4 and fmt.alpha == pytest.approx(act.alpha.item())
    )
    assert torch.equal(fmt.quantize(x), act(x).detach())
    assert "bits=4" in repr(act)
    assert parse_format("pact:4,alpha=2").module().alpha.item() == 2.0


def test_format_bits_and_errors() -> None:
    assert parse_format("pact:3").bits == 3
    with pytest.raises(FormatError):
        PactFormat(0)
    with pytest.raises(FormatError):
        PactFormat(4, -1.0)
    with pytest.raises(FormatError, match="scalar"):
        pact(torch.ones(3), torch.ones(2), 4)
