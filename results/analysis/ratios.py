"""Ratios of per-round measurements with a t-interval on the log scale and a t-test.

Latencies are positive and their ratios multiplicative, so every ratio is worked on the log
scale: the estimate is the geometric mean of the per-round ratios (paired: both measured in the
same round) or the ratio of geometric means (unpaired: two runs), the 95% interval is Student's
t-interval of the mean log ratio, transformed back, and the p-value is the matching t-test.
With the few rounds a run has (3 to 15), a t-interval is honest where a percentile bootstrap is
not: with 3 rounds the bootstrap's interval is at most the range of the 3 values, which holds
the true ratio 75% of the time; the t-interval's width grows as the rounds get fewer
(docs/architecture.md, "Intervals"). Callers: the pair analysis (bad / good, paired by round),
the interleaved gate (new / base, paired by round) and the stored-run gate (unpaired, widened by
the between-run spread `calibrate` measured).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

CONFIDENCE_LEVEL = 0.95
# Fewer samples than this give no interval and no p-value: one round says nothing about noise.
MIN_SAMPLES_FOR_INFERENCE = 2

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class RatioEstimate:
    """bad / good with its interval; None where the data cannot support a number."""

    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    rounds: int

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)


def ratio_with_ci(
    bad_samples: Sequence[float],
    good_samples: Sequence[float],
    *,
    paired: bool = True,
    confidence: float = CONFIDENCE_LEVEL,
    extra_log_variance: float = 0.0,
) -> RatioEstimate:
    """bad / good: its geometric-mean estimate, t-interval and two-sided t-test p-value.

    paired: sample i of both lists comes from the same round (a one-sample t on the log
    ratios). Unpaired: Welch's t on the two samples' logs. `extra_log_variance` is added to the
    variance of the mean log ratio: the between-run component two separate runs carry and their
    rounds cannot show (unpaired comparisons of stored runs, from `calibrate`).
    """
    bad = np.asarray(bad_samples, dtype=float)
    good = np.asarray(good_samples, dtype=float)
    if paired and bad.shape != good.shape:
        raise ValueError(f"paired samples differ in length: {bad.size} vs {good.size}")
    if bad.size == 0 or good.size == 0 or np.any(good <= 0) or np.any(bad <= 0):
        return RatioEstimate(None, None, None, None, min(bad.size, good.size))
    if paired:
        logs = np.log(bad / good)
        mean, rounds = float(logs.mean()), int(logs.size)
        if rounds < MIN_SAMPLES_FOR_INFERENCE:
            return RatioEstimate(math.exp(mean), None, None, None, rounds)
        variance = float(logs.var(ddof=1)) / rounds
        df = float(rounds - 1)
    else:
        log_bad, log_good = np.log(bad), np.log(good)
        mean = float(log_bad.mean() - log_good.mean())
        rounds = int(min(bad.size, good.size))
        if rounds < MIN_SAMPLES_FOR_INFERENCE:
            return RatioEstimate(math.exp(mean), None, None, None, rounds)
        parts = [float(log_bad.var(ddof=1)) / bad.size, float(log_good.var(ddof=1)) / good.size]
        variance = sum(parts)
        df = _welch_df(parts, [bad.size - 1, good.size - 1])
    return _t_estimate(mean, variance + extra_log_variance, df, rounds, confidence)


def _welch_df(parts: list[float], dfs: list[int]) -> float:
    """Welch-Satterthwaite degrees of freedom; the smaller sample's when both parts are zero."""
    denominator = sum(part * part / df for part, df in zip(parts, dfs, strict=True) if df > 0)
    if denominator == 0.0:
        return float(min(dfs))
    return sum(parts) ** 2 / denominator


def _t_estimate(
    mean: float, variance: float, df: float, rounds: int, confidence: float
) -> RatioEstimate:
    ratio = math.exp(mean)
    if variance <= 0.0:
        # Every round agrees exactly: a point interval; no test can weigh zero spread, so the
        # p-value is 1 when there is no difference at all and 0 when every round shows one.
        return RatioEstimate(ratio, ratio, ratio, 1.0 if mean == 0.0 else 0.0, rounds)
    se = math.sqrt(variance)
    t = float(stats.t.ppf(0.5 + confidence / 2.0, df))
    p_value = float(2.0 * stats.t.sf(abs(mean) / se, df))
    return RatioEstimate(ratio, math.exp(mean - t * se), math.exp(mean + t * se), p_value, rounds)


def mean_with_ci(
    samples: Sequence[float], *, confidence: float = CONFIDENCE_LEVEL
) -> tuple[float | None, float | None, float | None]:
    """(geometric mean, low, high) of per-round values: the t-interval on logs the ratios use
    (a paired ratio whose denominator is 1 in every round). None where there are no samples,
    and no interval from a single one."""
    estimate = ratio_with_ci(list(samples), [1.0] * len(samples), confidence=confidence)
    return estimate.ratio, estimate.ci_low, estimate.ci_high
