"""The error-ratio metric: a cliff judged by the share of requests that failed, not by latency."""

from __future__ import annotations

from typing import Any

import pytest

from pairbench.harness.scenario import Expectation
from pairbench.results.analysis.rounds import ERROR_RATIO, per_round
from pairbench.results.analysis.stats import analyse_pair

VARIANTS = [{"name": "leaks", "role": "bad"}, {"name": "releases", "role": "good"}]


def test_per_round_error_ratio_and_rounds_without_errors_left_out(synth: Any) -> None:
    trials = [
        synth.trial(5, 0, "a", [2000] * 90, errors=10),
        synth.trial(5, 1, "a", [], errors=12),  # nothing succeeded: no latency, all failed
        synth.trial(5, 2, "a", [2000] * 50),  # nothing failed: no ratio to take
    ]
    assert per_round(trials, ERROR_RATIO) == {0: 0.1, 1: 1.0}
    assert per_round(trials, "p50").keys() == {0, 2}


def test_a_drained_bad_variant_is_judged_by_its_errors(synth: Any) -> None:
    # The bad variant serves nothing in any round (no latency at all); the good one fails the
    # 5% it is told to fail: bad / good = 20, and the expectation decides on it.
    trials = []
    for r in range(3):
        trials.append(synth.trial(5, r, "leaks", [], errors=12))
        trials.append(synth.trial(5, r, "releases", [2000] * 95, errors=5))
    pair = synth.pair(trials, variants=VARIANTS, knobs=[5], metric=ERROR_RATIO, min_ratio=5.0)
    analysis = analyse_pair(pair)
    ratio = analysis["ratios"]["5"]["releases"]
    assert ratio["metric"] == ERROR_RATIO
    assert ratio["bad_over_good"] == pytest.approx(20.0)
    assert analysis["expectation"]["passed"] is True
    failing = synth.pair(trials, variants=VARIANTS, knobs=[5], metric=ERROR_RATIO, min_ratio=30)
    assert analyse_pair(failing)["expectation"]["passed"] is False


def test_a_scenario_may_declare_it() -> None:
    assert Expectation(metric="error_ratio", at=5, min_ratio=5).metric == ERROR_RATIO
