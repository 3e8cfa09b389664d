"""The `analysis` object of a pair record (docs/run-format.md), computed from its valid trials."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import histograms
from .expectation import check_expectation
from .knobs import knob_key, sorted_keys
from .ratios import DEFAULT_SEED, RatioEstimate, ratio_with_ci

__all__ = [
    "RatioEstimate",
    "analyse_pair",
    "merged_histograms",
    "ratio_metric",
    "ratio_with_ci",
    "valid_trials",
]

DEFAULT_RATIO_METRIC = "p50"
QUERIES_COUNTER = "queries"

Trial = Mapping[str, Any]


def valid_trials(pair: Mapping[str, Any]) -> list[Trial]:
    """The trials that may feed statistics: invalid data never feeds a verdict."""
    return [t for t in pair.get("trials", []) if t.get("valid") is True]


def ratio_metric(pair: Mapping[str, Any]) -> str:
    """The metric the ratios compare: the expectation's, p50 by default."""
    return str((pair.get("expectation") or {}).get("metric", DEFAULT_RATIO_METRIC))


def analyse_pair(pair: Mapping[str, Any], *, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Per-variant summaries, bad/good ratios per knob value and the expectation verdict."""
    metric = ratio_metric(pair)
    if metric not in histograms.METRICS:
        raise ValueError(f"unknown expectation metric {metric!r}")
    cells: dict[tuple[str, str], list[Trial]] = defaultdict(list)
    for trial in valid_trials(pair):
        cells[knob_key(trial["knob"]), trial["variant"]].append(trial)
    order = [v["name"] for v in pair["variants"]]
    per_variant: dict[str, dict[str, Any]] = {}
    ratios: dict[str, dict[str, Any]] = {}
    for key in sorted_keys(k for k, _ in cells):
        present = [name for name in order if (key, name) in cells]
        per_variant[key] = {name: _summarise(cells[key, name]) for name in present}
        at_knob = _ratios_at_knob(pair["bad"], present, cells, key, metric, seed)
        if at_knob:
            ratios[key] = at_knob
    return {
        "per_variant": per_variant,
        "ratios": ratios,
        "expectation": check_expectation(pair, ratios),
    }


def merged_histograms(pair: Mapping[str, Any], key: str) -> dict[str, histograms.Histogram]:
    """Variant name -> histogram merged over the valid trials at one knob key."""
    by_variant: dict[str, list[Trial]] = defaultdict(list)
    for trial in valid_trials(pair):
        if knob_key(trial["knob"]) == key:
            by_variant[trial["variant"]].append(trial)
    order = [v["name"] for v in pair["variants"]]
    return {name: _merge(by_variant[name]) for name in order if name in by_variant}


def _merge(trials: Iterable[Trial]) -> histograms.Histogram:
    return histograms.merge(histograms.decode(t["histogram"]) for t in trials)


def _summarise(trials: Sequence[Trial]) -> dict[str, Any]:
    merged = _merge(trials)
    elapsed = sum(float(t["elapsed_s"]) for t in trials)
    requests = sum(int(t["requests"]) for t in trials)
    return {
        "count": int(merged.get_total_count()),
        "rps": requests / elapsed if elapsed > 0 else None,
        **histograms.summary_ms(merged),
        "queries_per_request": _queries_per_request(trials),
        "rounds": len({t["round"] for t in trials}),
    }


def _queries_per_request(trials: Iterable[Trial]) -> float | None:
    # Only trials that expose the counter count on either side of the division.
    counted = [t for t in trials if QUERIES_COUNTER in (t.get("counters") or {})]
    requests = sum(int(t["requests"]) for t in counted)
    if requests == 0:
        return None
    return sum(float(t["counters"][QUERIES_COUNTER]) for t in counted) / requests


def _per_round_us(trials: Iterable[Trial], metric: str) -> dict[int, float]:
    """Round -> metric of that round's histogram; rounds with no positive value are left out."""
    by_round: dict[int, list[Trial]] = defaultdict(list)
    for trial in trials:
        by_round[int(trial["round"])].append(trial)
    values = {r: histograms.metric_us(_merge(ts), metric) for r, ts in by_round.items()}
    return {r: v for r, v in values.items() if v is not None and v > 0}


def _ratios_at_knob(
    bad: str,
    present: Sequence[str],
    cells: Mapping[tuple[str, str], Sequence[Trial]],
    key: str,
    metric: str,
    seed: int,
) -> dict[str, Any]:
    if bad not in present:
        return {}
    bad_rounds = _per_round_us(cells[key, bad], metric)
    result: dict[str, Any] = {}
    for name in present:
        if name == bad:
            continue
        other_rounds = _per_round_us(cells[key, name], metric)
        common = sorted(bad_rounds.keys() & other_rounds.keys())
        if not common:
            continue
        estimate = ratio_with_ci(
            [bad_rounds[r] for r in common], [other_rounds[r] for r in common], seed
        )
        result[name] = {
            "metric": metric,
            "bad_over_good": estimate.ratio,
            "ci_low": estimate.ci_low,
            "ci_high": estimate.ci_high,
            "p_value": estimate.p_value,
            "rounds": estimate.rounds,
        }
    return result
