"""SPET: exact mode is sound (no prediction changes, adversarial late terms handled), predictive
mode skips more and is counted."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.dynamic.chain import Affine
from axdnn.dynamic.plan import DynamicPlan, LayerSetting
from axdnn.dynamic.spet import Spet, SpetKnobs
from axdnn.errors import DynamicError


def _linear(w, b=None):
    w = torch.as_tensor(w, dtype=torch.float32)
    return Affine("fc", "linear", w, torch.zeros(w.shape[0]) if b is None else b, relu=True)


def test_exact_mode_keeps_an_output_whose_late_terms_flip_the_sign():
    # most significant term is strongly negative; nine small late terms add up to more
    w = [[-2.0] + [0.5] * 9]
    layer = _linear(w)
    x = torch.ones(1, 10)
    exact = Spet(layer, SpetKnobs(fraction=0.1, alpha=1.0, block=1), nonneg=True)
    assert torch.allclose(exact(x, None, torch.arange(1)), layer.dense(x))  # 2.5, not 0
    assert float(layer.dense(x)) == 2.5
    # a bound of zero (pure partial-sum sign) is wrong here: the input really is adversarial
    predictive = Spet(layer, SpetKnobs(fraction=0.1, alpha=0.0, block=1), nonneg=True)
    assert float(predictive(x, None, torch.arange(1))) == 0.0


def test_exact_mode_with_signed_inputs_uses_magnitudes():
    # negative input times negative weight: late terms are positive although the weights are not
    layer = _linear([[-2.0] + [-0.5] * 9])
    x = torch.tensor([[1.0] + [-1.0] * 9])
    spet = Spet(layer, SpetKnobs(fraction=0.1, alpha=1.0, block=1), nonneg=False)
    assert torch.allclose(spet(x, None, torch.arange(1)), layer.dense(x))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    fraction=st.sampled_from([0.1, 0.25, 0.5, 0.9]),
    block=st.sampled_from([1, 3, 8]),
    nonneg=st.booleans(),
    conv=st.booleans(),
)
def test_exact_mode_equals_dense(seed, fraction, block, nonneg, conv):
    g = torch.Generator().manual_seed(seed)
    if conv:
        w = torch.randn(8, 3, 3, 3, generator=g)
        layer = Affine("c", "conv", w, torch.randn(8, generator=g), True, (1, 2), (1, 0), (1, 1))
        x = torch.randn(2, 3, 7, 6, generator=g)
    else:
        layer = _linear(torch.randn(8, 20, generator=g), torch.randn(8, generator=g))
        x = torch.randn(3, 20, generator=g)
    if nonneg:
        x = x.clamp(min=0)
    spet = Spet(layer, SpetKnobs(fraction=fraction, alpha=1.0, block=block), nonneg=nonneg)
    assert torch.allclose(spet(x, None, torch.arange(len(x))), layer.dense(x), atol=1e-5)


def test_exact_mode_changes_no_prediction_on_the_whole_test_set(dyn, test_xy):
    x, y = test_xy
    dyn.set_plan(DynamicPlan())
    _, _, dense_pred = dyn.evaluate(x, y)
    with torch.no_grad():
        assert torch.equal(dense_pred, dyn.model(x).argmax(1))
    plan = DynamicPlan(
        {
            n: LayerSetting("spet", fraction=0.5, alpha=1.0, block=1)
            for n in dyn.affine_layers(relu_only=True)
        }
    )
    dyn.set_plan(plan)
    _, report, pred = dyn.evaluate(x, y)
    assert torch.equal(pred, dense_pred)
    assert all(layer.overhead_ops > 0 for layer in report.layers if layer.mechanism == "spet")


def test_predictive_mode_skips_at_least_as_much_as_exact(dyn, test_xy):
    x, y = test_xy
    skipped = {}
    for alpha in (1.0, 0.0):
        plan = DynamicPlan(
            {
                n: LayerSetting("spet", fraction=0.25, alpha=alpha, block=1)
                for n in dyn.affine_layers(relu_only=True)
            }
        )
        dyn.set_plan(plan)
        skipped[alpha] = dyn.evaluate(x[:100], y[:100])[1].skipped_macs
    assert skipped[0.0] > skipped[1.0] >= 0


def test_bad_knobs_and_layers_are_named():
    import pytest

    with pytest.raises(DynamicError, match="fraction"):
        SpetKnobs(fraction=1.5)
    with pytest.raises(DynamicError, match="alpha"):
        SpetKnobs(alpha=-0.1)
    layer = Affine("head", "linear", torch.ones(2, 3), torch.zeros(2), relu=False)
    with pytest.raises(DynamicError, match="head"):
        Spet(layer, SpetKnobs(), nonneg=True)
