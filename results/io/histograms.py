"""HdrHistogram helpers: decode trial histograms, merge them exactly, read metrics in ms.

Trial histograms hold latencies in microseconds (docs/run-format.md). Everything this module
returns to callers is in milliseconds, the unit reports and plots use.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from pairbench import runmodel

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3
US_PER_MS = 1000.0

# The metric names `expectation.metric` and the ratios use are part of the run format.
PERCENTILE_METRICS = runmodel.PERCENTILE_METRICS
MEAN_METRIC = runmodel.MEAN_METRIC
METRICS = runmodel.METRICS

# The spectrum stops at 99.999% (five nines), or earlier when there are too few samples to
# resolve a deeper tail: n samples resolve about log10(n) nines.
MAX_SPECTRUM_NINES = 5.0
SPECTRUM_POINTS = 200

Histogram = Any  # hdrh ships no type information


def new_histogram() -> Histogram:
    """An empty histogram with the documented range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def decode(encoded: str) -> Histogram:
    """Decode one trial's `histogram` field (compressed, base64 encoded)."""
    return HdrHistogram.decode(encoded)


def merge(histograms: Iterable[Histogram]) -> Histogram:
    """Add histograms bucket by bucket: an exact merge, never an average of percentiles."""
    merged = new_histogram()
    for histogram in histograms:
        merged.add(histogram)
    return merged


def mean_us(histogram: Histogram) -> float:
    """The mean in microseconds, each bucket counted at its midpoint as hdrh does.

    Same result as `get_mean_value()`, several times faster: hdrh's recorded-value iterator
    costs a Python object per step, this is one plain pass over the bucket counts.
    """
    total = 0
    for index in range(histogram.counts_len):
        count = histogram.get_count_at_index(index)
        if count:
            value = histogram.get_value_from_index(index)
            low = histogram.get_lowest_equivalent_value(value)
            high = histogram.get_highest_equivalent_value(value)
            total += count * (low + ((high - low + 1) >> 1))
    return total / histogram.get_total_count() if histogram.get_total_count() else 0.0


def metric_us(histogram: Histogram, metric: str) -> float | None:
    """One metric (see METRICS) in microseconds, or None for an empty histogram."""
    if histogram.get_total_count() == 0:
        return None
    if metric == MEAN_METRIC:
        return mean_us(histogram)
    if metric not in PERCENTILE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return float(histogram.get_value_at_percentile(PERCENTILE_METRICS[metric]))


def summary_ms(histogram: Histogram) -> dict[str, float | None]:
    """mean, p50, p90, p99, p99.9 and max in milliseconds (None when the histogram is empty)."""
    keys = [f"{name}_ms" for name in (MEAN_METRIC, *PERCENTILE_METRICS, "max")]
    if histogram.get_total_count() == 0:
        return dict.fromkeys(keys)
    # One pass over the buckets for all percentiles instead of one pass each.
    by_percentile = histogram.get_percentile_to_value_dict(list(PERCENTILE_METRICS.values()))
    values_us = [
        mean_us(histogram),
        *(by_percentile[p] for p in PERCENTILE_METRICS.values()),
        histogram.get_max_value(),
    ]
    return {key: value / US_PER_MS for key, value in zip(keys, values_us, strict=True)}


def spectrum_ms(histogram: Histogram) -> tuple[list[float], list[float]]:
    """The percentile spectrum: x = 1 / (1 - p) (1 is p0, 100 is p99) and latency in ms."""
    count = histogram.get_total_count()
    if count == 0:
        return [], []
    nines = min(MAX_SPECTRUM_NINES, float(np.log10(count)))
    x = np.logspace(0.0, nines, SPECTRUM_POINTS)
    percentiles = [float(p) for p in 100.0 * (1.0 - 1.0 / x)]
    by_percentile = histogram.get_percentile_to_value_dict(percentiles)
    return [float(v) for v in x], [by_percentile[p] / US_PER_MS for p in percentiles]
