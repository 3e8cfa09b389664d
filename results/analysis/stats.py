"""The `analysis` object of a pair record (docs/run-format.md), computed from its valid trials."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ..io import histograms
from .bystander import bystander_summary
from .expectation import check_expectation
from .knobs import knob_key, sorted_keys
from .mechanism import mechanism_summary
from .ratios import RatioEstimate, ratio_with_ci
from .rounds import THROUGHPUT, VARIANT, Subject, merged, per_round
from .trend import trends

__all__ = [
    "RatioEstimate",
    "analyse_pair",
    "cells_of",
    "merged_histograms",
    "paired_rounds",
    "ratio_metric",
    "ratio_subject",
    "ratio_with_ci",
    "valid_trials",
]

DEFAULT_RATIO_METRIC = "p50"
TTFB_METRIC = "p50"  # shown beside the full p50 in the measurements table

Trial = Mapping[str, Any]
Cells = dict[tuple[str, str], list[Trial]]


def valid_trials(pair: Mapping[str, Any]) -> list[Trial]:
    """The trials that may feed statistics: invalid data never feeds a verdict."""
    return [t for t in pair.get("trials", []) if t.get("valid") is True]


def cells_of(pair: Mapping[str, Any]) -> Cells:
    """(knob key, variant) -> the valid trials of that cell."""
    cells: Cells = defaultdict(list)
    for trial in valid_trials(pair):
        cells[knob_key(trial["knob"]), trial["variant"]].append(trial)
    return cells


def ratio_metric(pair: Mapping[str, Any]) -> str:
    """The metric the ratios compare: the expectation's, p50 by default."""
    return str((pair.get("expectation") or {}).get("metric", DEFAULT_RATIO_METRIC))


def ratio_subject(pair: Mapping[str, Any]) -> Subject:
    """Whose latency the ratios compare: the variant's own (default) or the bystander's."""
    subject = (pair.get("expectation") or {}).get("subject", VARIANT)
    return "bystander" if subject == "bystander" else VARIANT


def analyse_pair(pair: Mapping[str, Any]) -> dict[str, Any]:
    """Per-variant summaries, bad/good ratios per knob value and the expectation verdict."""
    metric = ratio_metric(pair)
    if metric not in histograms.METRICS:
        raise ValueError(f"unknown expectation metric {metric!r}")
    cells = cells_of(pair)
    order = [v["name"] for v in pair["variants"]]
    per_variant: dict[str, dict[str, Any]] = {}
    ratios: dict[str, dict[str, Any]] = {}
    for key in sorted_keys(k for k, _ in cells):
        present = [name for name in order if (key, name) in cells]
        per_variant[key] = {name: _summarise(pair, cells[key, name]) for name in present}
        at_knob = _ratios_at_knob(pair, present, cells, key)
        if at_knob:
            ratios[key] = at_knob
    return {
        "per_variant": per_variant,
        "ratios": ratios,
        "trends": trends(pair, per_variant),
        "expectation": check_expectation(pair, ratios),
    }


def merged_histograms(pair: Mapping[str, Any], key: str) -> dict[str, histograms.Histogram]:
    """Variant name -> histogram merged over the valid trials at one knob key."""
    cells = cells_of(pair)
    order = [v["name"] for v in pair["variants"]]
    return {name: merged(cells[key, name]) for name in order if (key, name) in cells}


def _summarise(pair: Mapping[str, Any], trials: Sequence[Trial]) -> dict[str, Any]:
    histogram = merged(trials)
    elapsed = sum(float(t["elapsed_s"]) for t in trials)
    requests = sum(int(t["requests"]) for t in trials)
    return {
        "count": int(histogram.get_total_count()),
        "rps": requests / elapsed if elapsed > 0 else None,
        **histograms.summary_ms(histogram),
        **mechanism_summary(pair, trials),
        "ttfb_p50_ms": _ttfb_p50_ms(trials),
        "statuses": _statuses(trials),
        "bystander": bystander_summary(trials),
        "rounds": len({t["round"] for t in trials}),
    }


def _statuses(trials: Sequence[Trial]) -> dict[str, int] | None:
    """Replies per HTTP status over the trials (a step accepting several, e.g. 200 and 429);
    None when no trial counted them."""
    counted = [t["statuses"] for t in trials if t.get("statuses")]
    if not counted:
        return None
    total: dict[str, int] = {}
    for statuses in counted:
        for status, count in statuses.items():
            total[status] = total.get(status, 0) + int(count)
    return dict(sorted(total.items()))


def _ttfb_p50_ms(trials: Sequence[Trial]) -> float | None:
    """Client-side time to first byte, p50 of the merged histograms; None when not recorded."""
    recorded = [histograms.decode(t["ttfb_histogram"]) for t in trials if t.get("ttfb_histogram")]
    if not recorded:
        return None
    value_us = histograms.metric_us(histograms.merge(recorded), TTFB_METRIC)
    return None if value_us is None else value_us / histograms.US_PER_MS


def _ratios_at_knob(
    pair: Mapping[str, Any], present: Sequence[str], cells: Cells, key: str
) -> dict[str, Any]:
    bad = pair["bad"]
    if bad not in present:
        return {}
    metric, subject = ratio_metric(pair), ratio_subject(pair)
    result: dict[str, Any] = {}
    for name in present:
        if name == bad:
            continue
        bad_values, other_values = paired_rounds(pair, cells, key, name)
        if not bad_values:
            continue
        estimate = ratio_with_ci(bad_values, other_values)
        result[name] = {
            "metric": metric,
            "subject": subject,
            "bad_over_good": estimate.ratio,
            "ci_low": estimate.ci_low,
            "ci_high": estimate.ci_high,
            "p_value": estimate.p_value,
            "rounds": estimate.rounds,
            **_throughput_ratio(cells[key, bad], cells[key, name]),
        }
    return result


def paired_rounds(
    pair: Mapping[str, Any], cells: Cells, key: str, other: str
) -> tuple[list[float], list[float]]:
    """The bad variant's and `other`'s per-round values of the ratio metric at a knob key, for
    the rounds both have a value in (round r of one beside round r of the other)."""
    metric, subject = ratio_metric(pair), ratio_subject(pair)
    bad_rounds = per_round(cells.get((key, pair["bad"]), []), metric, subject)
    other_rounds = per_round(cells.get((key, other), []), metric, subject)
    common = sorted(bad_rounds.keys() & other_rounds.keys())
    return [bad_rounds[r] for r in common], [other_rounds[r] for r in common]


def _throughput_ratio(bad: Sequence[Trial], good: Sequence[Trial]) -> dict[str, Any]:
    """good req/s over bad req/s per round (> 1: the fix serves more), with its interval."""
    bad_rounds, good_rounds = per_round(bad, THROUGHPUT), per_round(good, THROUGHPUT)
    common = sorted(bad_rounds.keys() & good_rounds.keys())
    if not common:
        return {}
    estimate = ratio_with_ci([good_rounds[r] for r in common], [bad_rounds[r] for r in common])
    return {
        "throughput_good_over_bad": estimate.ratio,
        "throughput_ci_low": estimate.ci_low,
        "throughput_ci_high": estimate.ci_high,
        "throughput_p_value": estimate.p_value,
    }
