"""Statistics of fault-injection campaigns: sample size, Wilson intervals, mean and CI, stopping.

- Sample size: Leveugle, Calvez, Maistri & Vanhauwaert, "Statistical fault injection: quantified
  error and confidence", DATE 2009, eq. 1: n = N / (1 + e^2 (N - 1) / (t^2 p (1 - p))), for a
  fault population N, margin e, the normal quantile t of the confidence and the expected rate p
  (0.5, the worst case, unless known).
- Proportions: the Wilson score interval (Wilson, JASA 1927), which keeps its coverage near 0
  and 1 where the normal approximation fails.
- Means (accuracy drop per trial): Student-t interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from axdnn.errors import InjectionError


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise InjectionError(f"confidence must be in (0, 1), got {confidence}")


def z_value(confidence: float) -> float:
    """Two-sided normal quantile of a confidence level (1.96 for 0.95)."""
    _check_confidence(confidence)
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def leveugle_sample_size(
    population: int, margin: float = 0.01, confidence: float = 0.95, p: float = 0.5
) -> int:
    """Number of faults to inject out of `population` for the given margin and confidence."""
    if population < 1:
        raise InjectionError(f"fault population must be >= 1, got {population}")
    if not 0 < margin < 1:
        raise InjectionError(f"margin must be in (0, 1), got {margin}")
    if not 0 < p < 1:
        raise InjectionError(f"expected rate p must be in (0, 1), got {p}")
    t = z_value(confidence)
    n = population / (1 + margin**2 * (population - 1) / (t**2 * p * (1 - p)))
    return min(population, math.ceil(n))


@dataclass
class Interval:
    """An estimate with its confidence interval."""

    estimate: float
    low: float
    high: float
    n: int
    confidence: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict:
        return asdict(self)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of a proportion successes / n (the empty sample gives [0, 1])."""
    _check_confidence(confidence)
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise InjectionError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return Interval(float("nan"), 0.0, 1.0, 0, confidence)
    z = z_value(confidence)
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(phat, low, high, n, confidence)


def mean_interval(values: np.ndarray | list[float], confidence: float = 0.95) -> Interval:
    """Mean with a Student-t interval (a single value gives an infinite interval)."""
    from scipy.stats import t as student_t

    _check_confidence(confidence)
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return Interval(float("nan"), float("-inf"), float("inf"), 0, confidence)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, float("-inf"), float("inf"), 1, confidence)
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence)


def mean_interval_from_sums(
    total: float, total_sq: float, n: int, confidence: float = 0.95
) -> Interval:
    """`mean_interval` from the sum and sum of squares (what a database aggregate gives)."""
    from scipy.stats import t as student_t

    if n < 2:
        mean = total / n if n else float("nan")
        return Interval(mean, float("-inf"), float("inf"), n, confidence)
    mean = total / n
    var = max(0.0, (total_sq - n * mean * mean) / (n - 1))
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(var / n)
    return Interval(mean, mean - half, mean + half, n, confidence)


def should_stop(successes: int, n: int, margin: float, confidence: float, min_trials: int) -> bool:
    """Adaptive stopping: the Wilson interval's half-width is within the margin."""
    if n < max(min_trials, 1):
        return False
    return wilson_interval(successes, n, confidence).half_width <= margin
