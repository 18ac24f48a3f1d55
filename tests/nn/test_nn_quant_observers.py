import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from axdnn.errors import ConfigError
from axdnn.nn.observers import Observer
from axdnn.nn.quant import QuantScheme, code_index, qparams, quantize_codes


@settings(max_examples=60, deadline=None)
@given(
    lo=st.floats(-100, 0),
    hi=st.floats(0.01, 100),
    bits=st.integers(2, 8),
    signed=st.booleans(),
    symmetric=st.booleans(),
)
def test_qparams_cover_the_range_and_zero_is_exact(lo, hi, bits, signed, symmetric):
    scheme = QuantScheme(bits, signed, symmetric)
    scale, zero = qparams(torch.tensor(lo), torch.tensor(hi), scheme)
    assert scheme.qmin <= int(zero) <= scheme.qmax
    zero_code = quantize_codes(torch.tensor(0.0), scale, zero, scheme)
    assert int(zero_code) == int(zero)
    x = torch.linspace(lo, hi, 101)
    codes = quantize_codes(x, scale, zero, scheme)
    deq = (codes - zero) * scale
    inside = (x >= (scheme.qmin - zero) * scale) & (x <= (scheme.qmax - zero) * scale)
    assert torch.all((deq - x)[inside].abs() <= scale / 2 + 1e-6 * x.abs().max())


def test_codes_round_half_to_even_and_saturate():
    scheme = QuantScheme(4, signed=True)
    codes = quantize_codes(
        torch.tensor([0.5, 1.5, 2.5, -0.5, 100.0, -100.0]),
        torch.tensor(1.0),
        torch.tensor(0),
        scheme,
    )
    assert codes.tolist() == [0, 2, 2, 0, 7, -8]


def test_code_index_is_the_twos_complement_pattern():
    assert code_index(torch.tensor([-1, -8, 0, 7]), 4).tolist() == [15, 8, 0, 7]


def test_per_channel_minmax_observer_tracks_each_channel():
    obs = Observer(QuantScheme(8, per_channel=True), axis=0)
    obs.observe(torch.tensor([[1.0, -2.0], [3.0, 4.0]]))
    obs.observe(torch.tensor([[5.0, 0.0], [-1.0, 2.0]]))
    lo, hi = obs.range()
    assert lo.tolist() == [-2.0, -1.0] and hi.tolist() == [5.0, 4.0]


def test_percentile_observer_ignores_rare_outliers():
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(0))
    x[0] = 1000.0
    minmax = Observer(QuantScheme(8, observer="minmax"))
    pct = Observer(QuantScheme(8, observer="percentile"))
    for obs in (minmax, pct):
        obs.observe(x)
    assert minmax.range()[1] == 1000.0
    assert pct.range()[1] < 10.0


def test_mse_observer_lowers_quantization_error_on_heavy_tails():
    torch.manual_seed(1)
    x = torch.distributions.StudentT(2.0).sample((50_000,))
    scheme_mm, scheme_mse = (
        QuantScheme(4, signed=True, symmetric=True),
        QuantScheme(4, signed=True, symmetric=True, observer="mse"),
    )

    def mse(scheme):
        obs = Observer(scheme)
        obs.observe(x)
        scale, zero = obs.qparams()
        return ((quantize_codes(x, scale, zero, scheme) - zero) * scale - x).pow(2).mean()

    assert mse(scheme_mse) < mse(scheme_mm)


@pytest.mark.parametrize("kwargs", [{"bits": 1}, {"bits": 17}, {"observer": "median"}])
def test_bad_schemes_are_rejected(kwargs):
    with pytest.raises(ConfigError):
        QuantScheme(**kwargs)
