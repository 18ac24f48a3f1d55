import torch
import torch.nn.functional as F
from torch import nn

from axdnn.nn import Plan, approximate
from axdnn.train.finetune import code_error_cost, distillation_loss, hardware_regularizer


def small_approx(spec="drum:4"):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    return approximate(model, Plan.uniform(spec), torch.randn(8, 1, 8, 8))


def test_distillation_with_alpha_zero_is_cross_entropy():
    teacher = nn.Linear(4, 3)
    logits, target, x = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1]), torch.randn(5, 4)
    loss = distillation_loss(teacher, alpha=0.0, temperature=4.0)
    torch.testing.assert_close(loss(logits, target, x), F.cross_entropy(logits, target))


def test_distillation_pulls_student_toward_teacher():
    teacher = nn.Linear(4, 3)
    x = torch.randn(16, 4)
    target = teacher(x).argmax(1)
    loss = distillation_loss(teacher, alpha=1.0, temperature=2.0)
    with torch.no_grad():
        assert loss(teacher(x), target, x) < loss(torch.zeros(16, 3), target, x)


def test_code_cost_is_zero_for_the_exact_table_and_normalised_otherwise():
    exact = small_approx("exact")
    assert torch.count_nonzero(code_error_cost(exact[0])) == 0
    cost = code_error_cost(small_approx("drum:4")[0])
    assert cost.max() == 1.0 and cost.min() >= 0 and cost.numel() == 256


def test_regularizer_step_lowers_the_penalty():
    model = small_approx("drum:4")
    penalty = hardware_regularizer(model, weight=1.0)
    before = penalty(model)
    before.backward()
    with torch.no_grad():
        for layer in (model[0], model[3]):
            ws, _ = layer.weight_qparams()
            shape = [-1] + [1] * (layer.weight.dim() - 1)
            layer.weight -= 0.5 * ws.reshape(shape) * layer.weight.grad.sign()
    assert penalty(model) < before
