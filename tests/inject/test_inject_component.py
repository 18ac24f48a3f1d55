import numpy as np
import pytest
import torch

from axdnn.arith import get_multiplier
from axdnn.errors import InjectionError
from axdnn.inject import (
    FaultPlan,
    Injector,
    SiteFaults,
    activation_classes,
    activation_histograms,
    class_moments,
    component_noise,
    conditional_component_noise,
    product_moments,
)
from axdnn.inject.sites import Site
from axdnn.nn import Plan, approximate
from axdnn.nn.quant import QuantScheme


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


def test_activation_classes_sign_octave_and_dominant_codes():
    u8 = QuantScheme(8, signed=False)
    hist = torch.ones(256)
    cls = activation_classes(u8, hist)
    groups = [[0], [1], [2, 3], [4, 7], [8, 15], [16, 31], [32, 63], [64, 127], [128, 255]]
    for codes in groups:
        assert len({int(cls[c]) for c in codes}) == 1
    assert len({int(cls[g[0]]) for g in groups}) == len(groups) == int(cls.max()) + 1
    hist[37] = 100  # a dominant code (e.g. a background level) forms a class of its own
    cls = activation_classes(u8, hist)
    assert (cls == cls[37]).sum() == 1 and cls[36] == cls[38]
    s8 = activation_classes(QuantScheme(8, signed=True), torch.ones(256))
    assert s8[1] != s8[255] and s8[2] == s8[3] and s8[254] == s8[253]  # +1 vs -1; +2/+3; -2/-3
    with pytest.raises(InjectionError):
        activation_classes(u8, hist, dominant=0)


def test_class_moments_by_hand():
    m = get_multiplier("trunc:4@u4")
    err = m.error_table().double()
    classes = torch.tensor([0] * 8 + [1] * 6 + [2] * 2)
    hist = torch.zeros(2, 16)
    hist[0, 3], hist[0, 5], hist[0, 12] = 1, 3, 2
    hist[1, 9] = 4  # channel 1 never shows class 0: it falls back to the layer's histogram
    mu, var = class_moments(err, hist, classes)
    assert torch.allclose(mu[0, 0], 0.25 * err[3] + 0.75 * err[5])
    assert torch.allclose(var[0, 0], 0.25 * err[3] ** 2 + 0.75 * err[5] ** 2 - mu[0, 0] ** 2)
    assert torch.allclose(mu[0, 1], err[12]) and not var[0, 1].any()
    assert torch.allclose(mu[1, 0], mu[0, 0]) and torch.allclose(mu[1, 1], err[9])
    assert torch.allclose(mu[1, 2], (err[14] + err[15]) / 2)  # never seen: uniform over the class
    with pytest.raises(InjectionError):
        class_moments(err, torch.zeros(16), classes)


@pytest.mark.parametrize(
    ("spec", "layer"),
    [("drum:4@u8", "features.3"), ("mitchell@u8", "features.3"), ("drum:5@s8", "fc")],
)
def test_conditional_noise_tracks_each_sample(trained_cnn, digits, spec, layer):
    """Against real table simulation of one layer: the per-sample mean (from the classes of the
    sample's own activations) explains part of the error's variation between samples, which the
    unconditional model leaves as noise, and the std matches what remains."""
    model = trained_cnn
    calib = digits.train.tensors[0][:128]
    approx = approximate(model, Plan(layers={layer: {"multiplier": spec}}), calib)
    exact_spec = "exact@" + spec.split("@")[1]
    exact = approximate(model, Plan(layers={layer: {"multiplier": exact_spec}}), calib)
    seen = {}
    module = dict(model.named_modules())[layer]
    hook = module.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0]))
    with torch.no_grad():
        model(calib)
    hook.remove()
    x = seen["x"]
    hists = activation_histograms(model, approx, calib)
    target = dict(approx.named_modules())[layer]
    noise, summary = conditional_component_noise(target, tuple(x.shape[1:]), hists[layer])
    with torch.no_grad():
        real = (target(x) - dict(exact.named_modules())[layer](x)).reshape(len(x), -1)
        mean, std = noise.moments_of(x)
    rms = lambda t: float(t.square().mean().sqrt())  # noqa: E731
    unconditional = rms(real - real.mean(0))
    conditional = rms(real - mean)
    assert conditional < 0.9 * unconditional
    assert 0.85 < rms(std) / conditional < 1.15
    assert summary.layer == layer and noise.to_dict()["conditional"]


def test_conditional_noise_sits_only_at_a_layer_output(trained_cnn, digits):
    calib = digits.train.tensors[0][:64]
    approx = approximate(trained_cnn, Plan.uniform("drum:4@u8"), calib)
    noise, _ = conditional_component_noise(approx.fc, (64,))
    with pytest.raises(InjectionError, match="output"):
        Injector(trained_cnn, [Site("fc", "input")], noise, [(64,)])
    injector = Injector(trained_cnn, [Site("fc")], noise, [(10,)])
    x = calib[:8]
    with torch.no_grad(), injector:
        rows = torch.arange(len(x))
        trials = np.arange(len(x))
        injector.arm(FaultPlan({0: SiteFaults(rows, trials)}))
        first = trained_cnn(x)
        injector.arm(FaultPlan({0: SiteFaults(rows, trials)}))
        again = trained_cnn(x)
        injector.arm(None)
        clean = trained_cnn(x)
    assert torch.equal(first, again) and not torch.equal(first, clean)
