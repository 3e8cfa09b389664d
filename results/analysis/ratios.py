"""Ratios of per-round measurements with a bootstrap confidence interval and a significance test.

The pair analysis feeds it per-round p50s of the bad and a good variant (paired by round);
compare and gate can feed it per-round values of a baseline and a new run (unpaired).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

CONFIDENCE_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 9_999
DEFAULT_SEED = 0
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
    seed: int = DEFAULT_SEED,
    *,
    paired: bool = True,
    confidence: float = CONFIDENCE_LEVEL,
) -> RatioEstimate:
    """Median ratio bad/good, percentile-bootstrap CI and two-sided Mann-Whitney U p-value.

    paired: sample i of both lists comes from the same round; the estimate is the median of
    the per-round ratios. Unpaired: the ratio of the two medians, each sample resampled on its
    own. Deterministic for a given seed.
    """
    bad = np.asarray(bad_samples, dtype=float)
    good = np.asarray(good_samples, dtype=float)
    if paired and bad.shape != good.shape:
        raise ValueError(f"paired samples differ in length: {bad.size} vs {good.size}")
    if bad.size == 0 or good.size == 0 or np.any(good <= 0):
        return RatioEstimate(None, None, None, None, min(bad.size, good.size))
    if paired:
        ratio = float(np.median(bad / good))
        rounds = int(bad.size)
    else:
        ratio = float(np.median(bad) / np.median(good))
        rounds = int(min(bad.size, good.size))
    if rounds < MIN_SAMPLES_FOR_INFERENCE:
        return RatioEstimate(ratio, None, None, None, rounds)
    low, high = _bootstrap_ci(bad, good, paired, seed, confidence)
    return RatioEstimate(ratio, low, high, _mann_whitney_p(bad, good), rounds)


def median_with_ci(
    samples: Sequence[float], seed: int = DEFAULT_SEED, *, confidence: float = CONFIDENCE_LEVEL
) -> tuple[float | None, float | None, float | None]:
    """(median, low, high) of per-round values, with the ratios' percentile bootstrap.

    The interval is the one `ratio_with_ci` gives a paired ratio whose denominator is 1 in every
    round; None where there are no samples, and no interval from a single one.
    """
    values = np.asarray(samples, dtype=float)
    if values.size == 0:
        return None, None, None
    median = float(np.median(values))
    if values.size < MIN_SAMPLES_FOR_INFERENCE:
        return median, None, None
    low, high = _bootstrap_ci(values, np.ones_like(values), True, seed, confidence)
    return median, low, high


def _median_of_ratios(ratios: FloatArray, axis: int = -1) -> FloatArray:
    return np.asarray(np.median(ratios, axis=axis))


def _ratio_of_medians(bad: FloatArray, good: FloatArray, axis: int = -1) -> FloatArray:
    return np.asarray(np.median(bad, axis=axis) / np.median(good, axis=axis))


def _bootstrap_ci(
    bad: FloatArray, good: FloatArray, paired: bool, seed: int, confidence: float
) -> tuple[float, float]:
    if paired:
        ratios = np.asarray(bad / good, dtype=np.float64)  # numpy 2.2 types the quotient loosely
        if np.all(ratios == ratios[0]):
            # Every round agrees: the bootstrap distribution is a single point.
            return float(ratios[0]), float(ratios[0])
        data: tuple[FloatArray, ...] = (ratios,)
        statistic = _median_of_ratios
    else:
        if np.all(bad == bad[0]) and np.all(good == good[0]):
            value = float(bad[0] / good[0])
            return value, value
        data = (bad, good)
        statistic = _ratio_of_medians  # type: ignore[assignment]
    result = stats.bootstrap(
        data,
        statistic,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def _mann_whitney_p(bad: FloatArray, good: FloatArray) -> float:
    p_value = float(stats.mannwhitneyu(bad, good, alternative="two-sided").pvalue)
    # All values tied: the test has nothing to reject, which is p = 1, not "unknown".
    return 1.0 if np.isnan(p_value) else p_value
