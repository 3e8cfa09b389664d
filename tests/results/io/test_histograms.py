"""Histogram helpers: exact merges and metrics in ms within HdrHistogram's precision."""

from __future__ import annotations

from typing import Any

import pytest

from pairbench.results.io import histograms

# 3 significant digits: a value read back is within 0.1% of the value recorded.
RELATIVE_PRECISION = 1e-3


def test_constant_latency_reads_back_in_ms(synth: Any) -> None:
    histogram = histograms.decode(synth.encode([5000] * 1000))
    summary = histograms.summary_ms(histogram)
    for key in ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"):
        assert summary[key] == pytest.approx(5.0, rel=RELATIVE_PRECISION), key
    assert histograms.metric_us(histogram, "p50") == pytest.approx(5000, rel=RELATIVE_PRECISION)


def test_percentiles_of_a_known_distribution(synth: Any) -> None:
    histogram = histograms.decode(synth.encode(range(1, 10_001)))  # 1 us .. 10 ms, uniform
    summary = histograms.summary_ms(histogram)
    assert summary["p50_ms"] == pytest.approx(5.0, rel=RELATIVE_PRECISION)
    assert summary["p90_ms"] == pytest.approx(9.0, rel=RELATIVE_PRECISION)
    assert summary["p99_ms"] == pytest.approx(9.9, rel=RELATIVE_PRECISION)
    assert summary["max_ms"] == pytest.approx(10.0, rel=RELATIVE_PRECISION)


def test_merge_counts_are_the_sum_and_merge_is_exact(synth: Any) -> None:
    parts = [synth.encode([1000] * 100), synth.encode([3000] * 300), synth.encode([])]
    merged = histograms.merge(histograms.decode(p) for p in parts)
    assert merged.get_total_count() == 400
    # 100 values at 1 ms and 300 at 3 ms: the median is 3 ms, never an average of medians.
    assert histograms.summary_ms(merged)["p50_ms"] == pytest.approx(3.0, rel=RELATIVE_PRECISION)


def test_empty_histogram_has_no_metrics(synth: Any) -> None:
    empty = histograms.decode(synth.encode([]))
    assert set(histograms.summary_ms(empty).values()) == {None}
    assert histograms.metric_us(empty, "p99") is None
    assert histograms.spectrum_ms(empty) == ([], [])


def test_unknown_metric_is_refused(synth: Any) -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        histograms.metric_us(histograms.decode(synth.encode([1])), "p42")


def test_spectrum_is_monotonic_and_stops_at_the_resolvable_nines(synth: Any) -> None:
    x, y = histograms.spectrum_ms(histograms.decode(synth.encode(range(1, 10_001))))
    assert x[0] == 1.0
    assert x[-1] == pytest.approx(10_000)  # 10,000 samples resolve four nines
    assert y == sorted(y)
    assert y[-1] == pytest.approx(10.0, rel=RELATIVE_PRECISION)


def test_fast_mean_equals_hdrh_mean(synth: Any) -> None:
    histogram = histograms.decode(synth.encode([3, 70, 1500, 1500, 2_500_000, 7_000_000]))
    assert histograms.mean_us(histogram) == pytest.approx(histogram.get_mean_value())
