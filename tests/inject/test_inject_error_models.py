import numpy as np
import pytest
import torch

from axdnn.errors import InjectionError
from axdnn.inject import Draws, parse_error_model
from axdnn.inject.error_models import AdditiveNoise, BitFlip, Quantize, StuckAt, UniformNoise

SPECS = [
    "bitflip:int8,bit=3",
    "bitflip",
    "bitflip:float16,count=3",
    "stuck1:float16",
    "stuck0:int4,bit=2",
    "value:1000",
    "random,low=-2,high=3",
    "gaussian:0.5,rel=std",
    "uniform:0.2,rel=max_abs",
    "quantize:int4",
]


@pytest.mark.parametrize("spec", SPECS)
def test_spec_round_trip(spec):
    model = parse_error_model(spec)
    assert parse_error_model(model.spec) == model
    assert model.to_dict()["kind"] == model.kind


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "nonsense",
        "bitflip:int99",
        "gaussian:0.1,rel=median",
        "bitflip:int8,bit=9",
        "random,low=2,high=1",
        "quantize:",
        "bitflip:float32,count=2,bit=3",
        "gaussian:abc",
        "value:1,wat=2",
    ],
)
def test_bad_specs_are_clear_errors(bad):
    with pytest.raises(InjectionError):
        parse_error_model(bad)


def test_multi_bit_flip_flips_distinct_bits():
    draws = Draws(0, np.arange(200))
    values = torch.full((200, 1), 1.5)
    out = BitFlip("float32", count=3).corrupt(values, draws)
    before = values.view(torch.int32)
    after = out.view(torch.int32)
    flipped = [
        bin(int(b) ^ int(a) & 0xFFFFFFFF).count("1")
        for b, a in zip(before[:, 0], after[:, 0], strict=True)
    ]
    assert set(flipped) == {3}


def test_stuck_at_sets_and_clears():
    draws = Draws(0, np.arange(4))
    x = torch.tensor([[1.0], [2.0], [-3.0], [0.5]])
    high = StuckAt("float32", bit=31, level=1).corrupt(x, draws)
    low = StuckAt("float32", bit=31, level=0).corrupt(x, draws)
    assert torch.equal(high, -x.abs()) and torch.equal(low, x.abs())


def test_relative_noise_scales_with_the_region_statistic():
    region = torch.randn(400, 500) * torch.linspace(0.1, 4, 400)[:, None]
    draws = Draws(1, np.arange(400), region)
    out = AdditiveNoise(std=0.5, relative_to="std").corrupt(region, draws)
    ratio = (out - region).std(dim=1) / region.std(dim=1)
    assert torch.allclose(ratio, torch.full_like(ratio, 0.5), rtol=0.15)
    absolute = AdditiveNoise(std=0.5).corrupt(region, Draws(1, np.arange(400), region))
    assert abs(float((absolute - region).std()) - 0.5) < 0.02


def test_uniform_noise_has_the_given_std_and_bounds():
    region = torch.zeros(50, 2000)
    out = UniformNoise(std=2.0).corrupt(region, Draws(3, np.arange(50), region))
    assert abs(float(out.std()) - 2.0) < 0.05
    assert float(out.abs().max()) <= 2.0 * 3**0.5 + 1e-5


def test_quantize_uses_the_format():
    x = torch.tensor([[0.26, 1.74, -3.3]])
    out = Quantize("fxp:s3.1").corrupt(x, Draws(0, np.arange(1)))
    assert torch.allclose(out, torch.tensor([[0.5, 1.5, -3.5]]))


def test_draws_are_a_function_of_the_trial():
    a = AdditiveNoise(std=1.0).corrupt(torch.zeros(3, 5), Draws(0, np.array([5, 6, 7])))
    b = AdditiveNoise(std=1.0).corrupt(torch.zeros(2, 5), Draws(0, np.array([6, 7])))
    assert torch.equal(a[1:], b)
