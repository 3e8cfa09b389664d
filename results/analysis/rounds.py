"""Per-round values of a set of trials: the unit that ratios and comparisons resample.

A round runs every variant once, so one round of one (knob, variant) cell is one sample; the
requests inside a round are not independent of each other and are never treated as samples.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pairbench import runmodel

from ..io import histograms

Subject = Literal["variant", "bystander"]
VARIANT: Subject = "variant"
BYSTANDER: Subject = "bystander"
THROUGHPUT = "throughput"  # requests per second
ERROR_RATIO = (
    runmodel.ERROR_RATIO_METRIC
)  # errors / requests; every other metric is a latency in ms

Trial = Mapping[str, Any]


def subject_record(trial: Trial, subject: Subject) -> Mapping[str, Any] | None:
    """The record holding requests and histogram: the trial itself or its bystander."""
    if subject == BYSTANDER:
        bystander = trial.get("bystander")
        return bystander if isinstance(bystander, Mapping) else None
    return trial


def merged(trials: Iterable[Trial], subject: Subject = VARIANT) -> histograms.Histogram:
    """The subject's histograms of these trials, merged exactly."""
    records = (subject_record(t, subject) for t in trials)
    return histograms.merge(histograms.decode(r["histogram"]) for r in records if r is not None)


def by_round(trials: Iterable[Trial]) -> dict[int, list[Trial]]:
    """Round index -> the trials of that round."""
    rounds: dict[int, list[Trial]] = defaultdict(list)
    for trial in trials:
        rounds[int(trial["round"])].append(trial)
    return dict(rounds)


def round_value(trials: Iterable[Trial], metric: str, subject: Subject = VARIANT) -> float | None:
    """One round's value: a latency metric in ms (time to first byte for a `ttfb_` one),
    throughput in requests per second, or the share of requests that failed."""
    trials = list(trials)
    records = [r for r in (subject_record(t, subject) for t in trials) if r is not None]
    if not records:
        return None
    if metric == ERROR_RATIO:
        requests = sum(int(r["requests"]) for r in records)
        return sum(int(r["errors"]) for r in records) / requests if requests else None
    if metric == THROUGHPUT:
        elapsed = sum(float(t["elapsed_s"]) for t in trials if subject_record(t, subject))
        requests = sum(int(r["requests"]) for r in records)
        return requests / elapsed if elapsed > 0 else None
    if metric.startswith(runmodel.TTFB_PREFIX):
        # Time to first byte is recorded for the variant's own requests only (`ttfb = true`).
        encoded = [r["ttfb_histogram"] for r in records if r.get("ttfb_histogram")]
        if not encoded:
            return None
        histogram = histograms.merge(histograms.decode(e) for e in encoded)
        value_us = histograms.metric_us(histogram, metric.removeprefix(runmodel.TTFB_PREFIX))
    else:
        value_us = histograms.metric_us(merged(trials, subject), metric)
    return None if value_us is None else value_us / histograms.US_PER_MS


def per_round(trials: Iterable[Trial], metric: str, subject: Subject = VARIANT) -> dict[int, float]:
    """Round -> value; rounds without a positive value (no successful request) are left out."""
    values = {r: round_value(ts, metric, subject) for r, ts in by_round(trials).items()}
    return {r: v for r, v in sorted(values.items()) if v is not None and v > 0}
