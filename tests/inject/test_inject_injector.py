import numpy as np
import pytest
import torch

from axdnn.inject import Injector, Site, parse_error_model, site_shapes, state_hash, weight_fault
from axdnn.inject.injector import FaultPlan, SiteFaults, predict_with_faults


def _outputs(model, name, x, injector=None, plan=None):
    seen = {}
    module = dict(model.named_modules())[name]
    hook = module.register_forward_hook(lambda m, a, out: seen.setdefault("out", out.clone()))
    try:
        if injector is not None:
            injector.arm(plan)
        with torch.no_grad():
            logits = model(x)
    finally:
        hook.remove()
    return seen["out"], logits


def test_element_faults_hit_exactly_one_element_of_each_faulty_row(trained_cnn, digits):
    model, x = trained_cnn, digits.test.tensors[0][:6]
    site = Site("features.3")
    clean, _ = _outputs(model, "features.3", x)
    shapes = site_shapes(model, [site], x[:1])
    injector = Injector(model, [site], parse_error_model("value:123"), shapes)
    rows, elements = torch.tensor([0, 2, 5]), torch.tensor([7, 100, 2047])
    plan = FaultPlan({0: SiteFaults(rows, np.array([0, 1, 2]), elements)})
    with injector:
        faulty, _ = _outputs(model, "features.3", x, injector, plan)
    diff = (faulty != clean).reshape(6, -1)
    assert diff.sum(dim=1).tolist() == [1, 0, 1, 0, 0, 1]
    assert faulty.reshape(6, -1)[rows, elements].eq(123).all()
    assert torch.equal(plan.original[0], clean.reshape(6, -1)[rows, elements])


def test_channel_region_and_input_site(trained_cnn, digits):
    model, x = trained_cnn, digits.test.tensors[0][:4]
    site = Site("features.3", "output", 5)
    clean, _ = _outputs(model, "features.3", x)
    shapes = site_shapes(model, [site], x[:1])
    injector = Injector(model, [site], parse_error_model("gaussian:1.0"), shapes)
    plan = FaultPlan({0: SiteFaults(torch.tensor([1]), np.array([0]))})
    with injector:
        faulty, _ = _outputs(model, "features.3", x, injector, plan)
    changed = (faulty != clean).any(dim=(2, 3))
    assert changed.nonzero().tolist() == [[1, 5]]
    # an input-site fault must not leak into the caller's tensor
    site = Site("features.3", "input")
    shapes = site_shapes(model, [site], x[:1])
    injector = Injector(model, [site], parse_error_model("value:1e6"), shapes)
    before = x.clone()
    with injector, torch.no_grad():
        injector.arm(
            FaultPlan({0: SiteFaults(torch.tensor([0]), np.array([0]), torch.tensor([3]))})
        )
        model(x)
    assert torch.equal(x, before)


def test_hooks_are_removed_and_model_unchanged(trained_cnn, digits):
    model, x = trained_cnn, digits.test.tensors[0][:8]
    before = state_hash(model)
    with torch.no_grad():
        clean = model(x)
    preds = predict_with_faults(
        model, x, [Site("features.0"), Site("fc")], parse_error_model("value:50")
    )
    assert preds.shape == (8,)
    with torch.no_grad():
        assert torch.equal(model(x), clean)
    assert state_hash(model) == before
    assert "forward" not in dict(model.named_modules())["features.0"].__dict__


def test_weight_fault_restores_weights_even_on_error(trained_cnn):
    model = trained_cnn
    before = state_hash(model)
    weight = model.features[0].weight
    site = Site("features.0", "weight", 3)
    with weight_fault(
        model, site, parse_error_model("bitflip:float32,bit=30"), trial=0, element=4
    ) as (orig, new):
        assert float(weight[3].reshape(-1)[4]) == new != orig
        assert state_hash(model) != before
    assert state_hash(model) == before
    with pytest.raises(RuntimeError, match="boom"):
        with weight_fault(model, Site("fc", "weight"), parse_error_model("gaussian:1.0"), trial=1):
            raise RuntimeError("boom")
    assert state_hash(model) == before


@pytest.mark.parametrize("spec", ["value:123", "bitflip:int8", "gaussian:0.5,rel=std"])
def test_a_fault_leaves_other_rows_bit_identical(trained_cnn, digits, spec):
    """The injected tensor keeps its memory layout (conv outputs are often channels-last), so
    the rows without a fault, and every later layer, compute exactly what a clean forward does."""
    model, x = trained_cnn, digits.test.tensors[0][:8]
    site = Site("features.3")
    clean_site, clean = _outputs(model, "features.3", x)
    assert not clean_site.is_contiguous()  # the layout this test is about
    injector = Injector(model, [site], parse_error_model(spec), site_shapes(model, [site], x[:1]))
    rows = torch.tensor([2])
    elements = torch.tensor([17]) if injector.scopes[0] == "element" else None
    plan = FaultPlan({0: SiteFaults(rows, np.array([0]), elements)})
    with injector:
        faulty_site, faulty = _outputs(model, "features.3", x, injector, plan)
    keep = torch.arange(8) != 2
    assert torch.equal(faulty[keep], clean[keep])
    assert torch.equal(faulty_site[keep], clean_site[keep])
    assert not torch.equal(faulty_site[2], clean_site[2])
