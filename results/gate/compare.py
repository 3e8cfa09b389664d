"""NEW against BASE per pair, variant, knob value and metric: the ratio, its interval, a verdict.

Two designs (docs/architecture.md, "The gate"):

- interleaved (`compare_interleaved`): one run measured both versions in the same rounds, in a
  fresh shuffled order; round r of NEW is paired with round r of BASE and the estimate is the
  geometric mean of the per-round new/base ratios, with a paired t-interval and t-test on logs.
  Drift between rounds cancels in the pairing: this is the comparison the gate trusts.
- stored (`compare`): two runs made at different times. Their rounds are unrelated (Welch's t on
  the logs), and nothing in either run shows how much a whole run moves when the machine's state
  changes between runs; with a calibration the between-run variance is added to the interval.

A quantile is only estimated where each round had enough requests for it (`min_requests`), the
p-values of a whole comparison are adjusted together for false discoveries (Benjamini-Hochberg),
and the verdict is read from the adjusted p-value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy import stats as scipy_stats

from pairbench.runmodel import TTFB_PREFIX

from ..analysis.knobs import knob_text, sorted_keys
from ..analysis.ratios import MIN_SAMPLES_FOR_INFERENCE, ratio_with_ci
from ..analysis.rounds import (
    BYSTANDER,
    THROUGHPUT,
    VARIANT,
    Subject,
    by_round,
    per_round,
    subject_record,
)
from ..analysis.stats import cells_of, ratio_metric, ratio_subject

ALPHA = 0.05
# A quantile q is estimated from one round only when the round saw at least
# TAIL_REQUESTS / (1 - q) requests: 10 for p50, 50 for p90, 500 for p99. Fewer, and the
# round's "p99" is one of its few slowest requests, not a quantile (docs/architecture.md).
TAIL_REQUESTS = 5
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999}

# (label, metric, subject); the bystander's p99 only where one was loaded.
METRICS: tuple[tuple[str, str, Subject], ...] = (
    ("p50", "p50", VARIANT),
    ("p99", "p99", VARIANT),
    (THROUGHPUT, THROUGHPUT, VARIANT),
)
BYSTANDER_METRIC: tuple[str, str, Subject] = ("bystander p99", "p99", BYSTANDER)
MetricSet = Literal["headline", "all"]

FASTER = "faster"
SLOWER = "slower"
NO_CHANGE = "no significant change"
NO_DATA = "no data"
NOT_JUDGED = "not judged"  # data exist but cannot estimate the metric (too few requests)

Run = Mapping[str, Any]
# (pair, variant, knob text, metric label) -> the between-run sd of the metric's log.
Calibration = Mapping[tuple[str, str, str, str], float]


@dataclass(frozen=True)
class Comparison:
    """One metric of one variant at one knob value: NEW against BASE."""

    pair: str
    variant: str
    knob: str  # e.g. "n=100"
    metric: str  # p50, p99, throughput or "bystander p99"
    base: float | None  # geometric mean of BASE's per-round values (ms, or req/s)
    new: float | None
    ratio: float | None  # new / base
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    base_rounds: int
    new_rounds: int
    detectable: bool  # enough rounds that a change could be significant at all
    verdict: str  # faster, slower, no significant change, no data, not judged
    paired: bool = False  # rounds paired (interleaved) or two separate runs
    p_adjusted: float | None = None  # Benjamini-Hochberg over the whole comparison
    widened: bool = False  # the stored-run interval includes the calibrated between-run spread
    note: str = ""  # why a cell was not judged

    @property
    def unit(self) -> str:
        """`req/s` for throughput, `ms` for every latency."""
        return "req/s" if self.metric == THROUGHPUT else "ms"

    @property
    def slowdown(self) -> float | None:
        """The estimate as a time factor: 1.12 is 12% slower (latency up 12%, or throughput
        down to 1/1.12)."""
        if self.ratio is None or self.ratio <= 0:
            return None
        return 1.0 / self.ratio if self.metric == THROUGHPUT else self.ratio

    @property
    def slower_by(self) -> float | None:
        """The slowdown NEW is certain of: the interval's bound on the slow side."""
        if self.metric == THROUGHPUT:
            return None if not self.ci_high else 1.0 / self.ci_high
        return self.ci_low


def metric_set(
    pair: Mapping[str, Any], which: MetricSet, has_bystander: bool
) -> list[tuple[str, str, Subject]]:
    """The metrics gated for a pair: its headline (the expectation's metric and subject, p50
    of the variant by default) or all of them."""
    if which == "all":
        return [*METRICS, *([BYSTANDER_METRIC] if has_bystander else [])]
    metric, subject = ratio_metric(pair), ratio_subject(pair)
    label = f"bystander {metric}" if subject == BYSTANDER else metric
    return [(label, metric, subject)]


def compare(
    base_run: Run,
    new_run: Run,
    *,
    alpha: float = ALPHA,
    metrics: MetricSet = "all",
    calibration: Calibration | None = None,
) -> list[Comparison]:
    """Two stored runs: every (pair, variant, knob value, metric) both know, in BASE's order."""
    return adjust(_cells(base_run, new_run, False, metrics, calibration), alpha)


def compare_interleaved(
    run: Run, *, alpha: float = ALPHA, metrics: MetricSet = "headline"
) -> list[Comparison]:
    """One interleaved run: its `baseline.pairs` against its `pairs`, paired by round."""
    baseline = run.get("baseline") or {}
    base_view = {"pairs": baseline.get("pairs") or {}}
    return adjust(_cells(base_view, run, True, metrics, None), alpha)


def adjust(comparisons: Sequence[Comparison], alpha: float) -> list[Comparison]:
    """Benjamini-Hochberg adjusted p-values over every comparison that has one, and the
    verdicts read from them: the share of false alarms among the alarms stays at alpha."""
    tested = [i for i, c in enumerate(comparisons) if c.p_value is not None]
    adjusted = list(comparisons)
    if tested:
        values = np.array([comparisons[i].p_value for i in tested], dtype=float)
        q_values = scipy_stats.false_discovery_control(values, method="bh")
        for i, q in zip(tested, q_values, strict=True):
            c = comparisons[i]
            q = float(min(1.0, q))
            adjusted[i] = replace(c, p_adjusted=q, verdict=_verdict(c, q, alpha))
    return adjusted


def _cells(
    base_run: Run,
    new_run: Run,
    paired: bool,
    metrics: MetricSet,
    calibration: Calibration | None,
) -> list[Comparison]:
    comparisons = []
    for name, base_pair in base_run["pairs"].items():
        new_pair = new_run["pairs"].get(name)
        if new_pair is None:
            continue
        base_cells, new_cells = cells_of(base_pair), cells_of(new_pair)
        keys = sorted_keys([k for k, _ in base_cells] + [k for k, _ in new_cells])
        base_variants = {v["name"] for v in base_pair["variants"]}
        for variant in (v["name"] for v in new_pair["variants"]):
            if variant not in base_variants:
                continue
            for key in keys:
                base_trials = base_cells.get((key, variant), [])
                new_trials = new_cells.get((key, variant), [])
                bystander = any(subject_record(t, BYSTANDER) for t in [*base_trials, *new_trials])
                where = knob_text(new_pair, key)
                for label, metric, subject in metric_set(new_pair, metrics, bystander):
                    extra = 0.0
                    if calibration is not None:
                        sd = calibration.get((name, variant, where, label))
                        extra = 2.0 * sd * sd if sd is not None else 0.0
                    comparisons.append(
                        _compare(
                            (name, variant, where, label),
                            (base_trials, new_trials),
                            metric,
                            subject,
                            paired,
                            extra,
                            calibration is not None,
                        )
                    )
    return comparisons


def min_requests(metric: str) -> int:
    """Requests a round needs for `metric` to be estimated from it (throughput: one)."""
    q = QUANTILES.get(metric.removeprefix(TTFB_PREFIX))
    return 1 if q is None else math.ceil(TAIL_REQUESTS / (1.0 - q) - 1e-9)


def fewest_requests(trials: Sequence[Mapping[str, Any]], subject: Subject) -> int | None:
    """The fewest requests any round of these trials recorded for the subject."""
    counts = []
    for trials_of_round in by_round(trials).values():
        records = [subject_record(t, subject) for t in trials_of_round]
        counts.append(sum(int(r["requests"]) - int(r.get("errors", 0)) for r in records if r))
    return min(counts) if counts else None


def _compare(
    where: tuple[str, str, str, str],
    trials: tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]],
    metric: str,
    subject: Subject,
    paired: bool,
    extra_log_variance: float,
    calibrated: bool,
) -> Comparison:
    pair, variant, knob, label = where
    base_by_round = per_round(trials[0], metric, subject)
    new_by_round = per_round(trials[1], metric, subject)
    if paired:
        common = sorted(base_by_round.keys() & new_by_round.keys())
        base = [base_by_round[r] for r in common]
        new = [new_by_round[r] for r in common]
    else:
        base, new = list(base_by_round.values()), list(new_by_round.values())
    estimate = ratio_with_ci(
        new, base, paired=paired, extra_log_variance=0.0 if paired else extra_log_variance
    )
    needed = min_requests(metric)
    fewest = min(
        (n for n in (fewest_requests(t, subject) for t in trials) if n is not None), default=None
    )
    note = ""
    if estimate.ratio is not None and fewest is not None and fewest < needed:
        note = (
            f"{label} needs {needed} requests per round to be estimated; the fewest had "
            f"{fewest}: not judged"
        )
    comparison = Comparison(
        pair=pair,
        variant=variant,
        knob=knob,
        metric=label,
        base=_geometric_mean(base),
        new=_geometric_mean(new),
        ratio=estimate.ratio,
        ci_low=estimate.ci_low,
        ci_high=estimate.ci_high,
        p_value=None if note else estimate.p_value,
        base_rounds=len(base),
        new_rounds=len(new),
        detectable=min(len(base), len(new)) >= MIN_SAMPLES_FOR_INFERENCE,
        verdict=NO_CHANGE,
        paired=paired,
        widened=calibrated and not paired and extra_log_variance > 0,
        note=note,
    )
    if estimate.ratio is None:
        return replace(comparison, verdict=NO_DATA)
    if note:
        return replace(comparison, verdict=NOT_JUDGED)
    return comparison


def _geometric_mean(values: Sequence[float]) -> float | None:
    return float(np.exp(np.mean(np.log(values)))) if values else None


def _verdict(comparison: Comparison, p_adjusted: float, alpha: float) -> str:
    """Significant means both: the adjusted p below alpha and an interval that excludes 1."""
    c = comparison
    if c.ci_low is None or c.ci_high is None or p_adjusted >= alpha:
        return NO_CHANGE
    higher = c.ci_low > 1.0
    if not higher and not c.ci_high < 1.0:
        return NO_CHANGE
    # More latency is slower; more throughput is faster.
    return SLOWER if higher != (c.metric == THROUGHPUT) else FASTER
