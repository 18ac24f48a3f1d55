import pytest
import torch

from axdnn.arith import get_multiplier
from axdnn.inject import activation_histograms, component_noise, product_moments
from axdnn.nn import Plan, approximate


def test_product_moments_by_hand():
    m = get_multiplier("trunc:4@u4")
    hist = torch.zeros(16)
    hist[3], hist[5] = 1, 3
    mu, var = product_moments(m.error_table(), hist)
    err = m.error_table().double()
    expected_mu = 0.25 * err[3] + 0.75 * err[5]
    assert torch.allclose(mu, expected_mu)
    assert torch.allclose(var, 0.25 * err[3] ** 2 + 0.75 * err[5] ** 2 - expected_mu**2)


@pytest.mark.parametrize("positional", [False, True])
def test_component_noise_predicts_the_layer_error(trained_cnn, digits, positional):
    """Against real table simulation of one layer: the predicted mean error of every output is
    exact (a sum of expectations), the std is right on average (independence assumption)."""
    model = trained_cnn
    calib = digits.train.tensors[0][:128]
    plan = Plan(layers={"features.3": {"multiplier": "drum:4@u8"}})
    approx = approximate(model, plan, calib)
    exact = approximate(model, Plan(layers={"features.3": {"multiplier": "exact@u8"}}), calib)
    seen = {}
    hook = model.features[3].register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    with torch.no_grad():
        model(calib)
    hook.remove()
    x = seen["x"]
    hists = activation_histograms(model, approx, calib, positional=positional)
    noise, summary = component_noise(approx.features[3], tuple(x.shape[1:]), hists["features.3"])
    with torch.no_grad():
        diff = approx.features[3](x) - exact.features[3](x)
    scale = float(diff.abs().mean())
    measured_mean, measured_std = diff.mean(0), diff.std(0, correction=0)
    if positional:
        assert torch.allclose(noise.mean, measured_mean, atol=1e-3 * scale)
    else:
        assert abs(float(noise.mean.mean() - measured_mean.mean())) < 0.05 * scale
    ratio = float(noise.std.mean() / measured_std.mean())
    assert 0.6 < ratio < 1.6
    assert summary.layer == "features.3" and summary.reduction_length == 16 * 9
