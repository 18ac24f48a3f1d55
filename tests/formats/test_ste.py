"""Straight-through estimator helpers."""

import torch

from axdnn.formats import clipped_straight_through, round_ste, straight_through


def test_forward_is_q_and_backward_is_identity_or_masked() -> None:
    x = torch.tensor([0.2, 1.7, -3.0], requires_grad=True)
    q = torch.tensor([0.0, 2.0, float("inf")])
    y = straight_through(x, q)
    assert torch.equal(y, q)  # inf survives (x + (q - x).detach() would give NaN only for inf x)
    (y[:2] * torch.tensor([3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [3.0, 4.0, 0.0]
    x.grad = None
    straight_through(x, q, torch.tensor([True, False, True])).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 1.0]


def test_inf_input_does_not_turn_into_nan() -> None:
    x = torch.tensor([float("inf"), 1.0], requires_grad=True)
    y = straight_through(x, torch.tensor([float("inf"), 1.0]))
    assert y.tolist() == [float("inf"), 1.0]


def test_clipped_and_round() -> None:
    x = torch.tensor([-2.0, -1.0, 0.3, 1.0, 1.5], requires_grad=True)
    clipped_straight_through(x, x.detach().clamp(-1, 1), -1.0, 1.0).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    z = torch.tensor([0.5, 1.5, 2.4], requires_grad=True)
    r = round_ste(z)
    assert r.tolist() == [0.0, 2.0, 2.0]
    r.sum().backward()
    assert z.grad.tolist() == [1.0, 1.0, 1.0]


def test_no_graph_when_grad_not_needed() -> None:
    x = torch.tensor([1.0, 2.0])
    q = torch.tensor([1.0, 3.0])
    assert straight_through(x, q).grad_fn is None
    with torch.no_grad():
        assert straight_through(x.requires_grad_(), q).grad_fn is None
