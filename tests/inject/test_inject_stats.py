import math

import numpy as np
import pytest
from scipy import stats

from axdnn.errors import InjectionError
from axdnn.inject import leveugle_sample_size, mean_interval, should_stop, wilson_interval


def test_wilson_matches_published_values():
    # Newcombe, Stat. Med. 1998, table I: 81/263 -> 0.2553-0.3662 (Wilson, 95%)
    ci = wilson_interval(81, 263, 0.95)
    assert round(ci.low, 4) == 0.2553 and round(ci.high, 4) == 0.3662
    zero = wilson_interval(0, 20)
    assert zero.low == 0 and 0.15 < zero.high < 0.17  # 0.1611
    with pytest.raises(InjectionError):
        wilson_interval(5, 3)


def test_leveugle_sample_size():
    # infinite population, e=1%, 95%, p=0.5: t^2 p(1-p)/e^2 = 9604 (Leveugle et al. 2009)
    assert leveugle_sample_size(10**12, 0.01, 0.95) in (9604, 9605)
    n = leveugle_sample_size(10_000, 0.05, 0.99)
    t = 2.5758293035489
    assert n == math.ceil(10_000 / (1 + 0.05**2 * 9_999 / (t * t * 0.25)))
    assert leveugle_sample_size(10, 0.01) == 10
    with pytest.raises(InjectionError):
        leveugle_sample_size(100, 1.5)


def test_mean_interval_matches_scipy():
    x = np.random.default_rng(0).normal(size=30)
    ci = mean_interval(x, 0.9)
    low, high = stats.t.interval(0.9, 29, loc=x.mean(), scale=stats.sem(x))
    assert ci.low == pytest.approx(low) and ci.high == pytest.approx(high)


def test_adaptive_stopping_rule():
    assert not should_stop(10, 50, 0.05, 0.95, 100)
    assert should_stop(10, 5000, 0.05, 0.95, 100)
    assert not should_stop(2500, 5000, 0.005, 0.95, 100)
