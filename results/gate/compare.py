"""Compare two stored runs: per pair, variant, knob value and metric, NEW / BASE with a CI.

Rounds are the samples (a round's requests are not independent); the two runs' rounds are
unrelated, so the ratio is of medians, each run resampled on its own (`paired=False`), and the
p-value is a two-sided Mann-Whitney U test of the per-round values.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from ..analysis.knobs import knob_text, sorted_keys
from ..analysis.ratios import DEFAULT_SEED, ratio_with_ci
from ..analysis.rounds import (
    BYSTANDER,
    THROUGHPUT,
    VARIANT,
    Subject,
    per_round,
    subject_record,
)
from ..analysis.stats import cells_of

ALPHA = 0.05
# (label, metric, subject); the bystander's p99 only where one was loaded.
METRICS: tuple[tuple[str, str, Subject], ...] = (
    ("p50", "p50", VARIANT),
    ("p99", "p99", VARIANT),
    (THROUGHPUT, THROUGHPUT, VARIANT),
)
BYSTANDER_METRIC: tuple[str, str, Subject] = ("bystander p99", "p99", BYSTANDER)

FASTER = "faster"
SLOWER = "slower"
NO_CHANGE = "no significant change"
NO_DATA = "no data"

Run = Mapping[str, Any]


@dataclass(frozen=True)
class Comparison:
    """One metric of one variant at one knob value: NEW against BASE."""

    pair: str
    variant: str
    knob: str  # e.g. "n=100"
    metric: str  # p50, p99, throughput or "bystander p99"
    base: float | None  # median of BASE's per-round values (ms, or req/s for throughput)
    new: float | None
    ratio: float | None  # new / base
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    base_rounds: int
    new_rounds: int
    detectable: bool  # enough rounds that a change could be significant at alpha at all
    verdict: str  # faster, slower, no significant change, no data

    @property
    def unit(self) -> str:
        """`req/s` for throughput, `ms` for every latency."""
        return "req/s" if self.metric == THROUGHPUT else "ms"

    @property
    def slower_by(self) -> float | None:
        """The slowdown NEW is certain of: the CI bound on the slow side, as a time factor.

        1.12 means NEW is at least 12% slower (latency up 12%, or throughput down to 1/1.12).
        """
        if self.metric == THROUGHPUT:
            return None if not self.ci_high else 1.0 / self.ci_high
        return self.ci_low


def compare(
    base_run: Run, new_run: Run, *, alpha: float = ALPHA, seed: int = DEFAULT_SEED
) -> list[Comparison]:
    """Every (pair, variant, knob value, metric) both runs know, in BASE's order."""
    comparisons = []
    for name, base_pair in base_run["pairs"].items():
        new_pair = new_run["pairs"].get(name)
        if new_pair is None:
            continue
        base_cells, new_cells = cells_of(base_pair), cells_of(new_pair)
        keys = sorted_keys([k for k, _ in base_cells] + [k for k, _ in new_cells])
        new_variants = {v["name"] for v in new_pair["variants"]}
        for variant in (v["name"] for v in base_pair["variants"]):
            if variant not in new_variants:
                continue
            for key in keys:
                base_trials = base_cells.get((key, variant), [])
                new_trials = new_cells.get((key, variant), [])
                metrics = list(METRICS)
                if any(subject_record(t, BYSTANDER) for t in [*base_trials, *new_trials]):
                    metrics.append(BYSTANDER_METRIC)
                for label, metric, subject in metrics:
                    base_values = list(per_round(base_trials, metric, subject).values())
                    new_values = list(per_round(new_trials, metric, subject).values())
                    where = knob_text(base_pair, key)
                    comparisons.append(
                        _compare(name, variant, where, label, base_values, new_values, alpha, seed)
                    )
    return comparisons


def smallest_p(n_base: int, n_new: int) -> float:
    """The smallest two-sided p-value the test can give with these sample sizes."""
    return _smallest_p(min(n_base, n_new), max(n_base, n_new))


@functools.cache
def _smallest_p(n_small: int, n_large: int) -> float:
    if n_small == 0:
        return 1.0
    # Complete separation is the strongest evidence two samples can give.
    low, high = np.arange(n_small), np.arange(n_small, n_small + n_large)
    return float(scipy_stats.mannwhitneyu(low, high, alternative="two-sided").pvalue)


def _compare(
    pair: str,
    variant: str,
    knob: str,
    metric: str,
    base: Sequence[float],
    new: Sequence[float],
    alpha: float,
    seed: int,
) -> Comparison:
    estimate = ratio_with_ci(new, base, seed, paired=False)
    verdict = _verdict(
        estimate.ratio, estimate.ci_low, estimate.ci_high, estimate.p_value, metric, alpha
    )
    return Comparison(
        pair=pair,
        variant=variant,
        knob=knob,
        metric=metric,
        base=float(np.median(base)) if base else None,
        new=float(np.median(new)) if new else None,
        ratio=estimate.ratio,
        ci_low=estimate.ci_low,
        ci_high=estimate.ci_high,
        p_value=estimate.p_value,
        base_rounds=len(base),
        new_rounds=len(new),
        detectable=smallest_p(len(base), len(new)) < alpha,
        verdict=verdict,
    )


def _verdict(
    ratio: float | None,
    low: float | None,
    high: float | None,
    p_value: float | None,
    metric: str,
    alpha: float,
) -> str:
    """Significant means both: p below alpha and an interval that excludes 1."""
    if ratio is None:
        return NO_DATA
    if p_value is None or low is None or high is None or p_value >= alpha:
        return NO_CHANGE
    higher = low > 1.0
    if not higher and not high < 1.0:
        return NO_CHANGE
    # More latency is slower; more throughput is faster.
    return SLOWER if higher != (metric == THROUGHPUT) else FASTER
