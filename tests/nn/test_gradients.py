import torch
from torch import nn

from axdnn.arith import get_multiplier
from axdnn.nn import Plan, approximate
from axdnn.nn.gradients import smoothed_difference, table_gradient


def _grads(model, x):
    x = x.clone().requires_grad_(True)
    model.zero_grad()
    model(x).pow(2).sum().backward()
    return x.grad.clone(), [p.grad.clone() for p in model.parameters()]


def test_table_gradient_of_the_exact_table_is_the_straight_through_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 9, 4)
    )
    x = torch.randn(5, 2, 6, 6)
    for domain in ("u8", "s8"):
        ste = approximate(model, Plan.uniform(f"exact@{domain}", gradient="ste"), x)
        tab = approximate(model, Plan.uniform(f"exact@{domain}", gradient="table"), x)
        gx_s, gp_s = _grads(ste, x)
        gx_t, gp_t = _grads(tab, x)
        torch.testing.assert_close(gx_t, gx_s, rtol=1e-4, atol=1e-5)
        for a, b in zip(gp_t, gp_s, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_table_gradient_differs_for_an_approximate_table():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten())
    x = torch.randn(5, 2, 6, 6)
    ste = approximate(model, Plan.uniform("trunc:10", gradient="ste"), x)
    tab = approximate(model, Plan.uniform("trunc:10", gradient="table"), x)
    assert not torch.allclose(_grads(ste, x)[0], _grads(tab, x)[0])


def test_smoothed_difference_of_a_linear_function_is_its_slope():
    rows = torch.arange(16.0)[:, None] * torch.tensor([[2.0, -3.0]])
    torch.testing.assert_close(
        smoothed_difference(rows, 2), torch.tensor([[2.0, -3.0]]).expand(16, 2).double()
    )


def test_difference_factors_reconstruct_a_low_rank_difference_table():
    m = get_multiplier("drum:4")
    g = table_gradient(m.table, False, False, rank=16)
    approx = g.ua @ g.va.T
    exact = smoothed_difference(m.table.double(), 2)
    assert (approx.double() - exact).abs().max() / exact.abs().max() < 0.05
