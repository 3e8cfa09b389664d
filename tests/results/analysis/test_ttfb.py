"""The time-to-first-byte metrics: a lesson judged by when the reply starts, not when it ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pairbench.errors import UsageError
from pairbench.harness import scenario
from pairbench.harness.scenario import Expectation
from pairbench.results.analysis.rounds import BYSTANDER, per_round
from pairbench.results.analysis.stats import analyse_pair
from pairbench.runmodel import METRICS, TTFB_METRICS

VARIANTS = [{"name": "buffered", "role": "bad"}, {"name": "streamed", "role": "good"}]
FULL_US = 100_000  # both variants end after 100 ms: the full latency is the same


def _trial(synth: Any, round_index: int, variant: str, ttfb_us: float | None) -> dict[str, Any]:
    trial: dict[str, Any] = synth.trial(10, round_index, variant, [FULL_US] * 20)
    if ttfb_us is not None:
        trial["ttfb_histogram"] = synth.encode([ttfb_us] * 20)
    return trial


def test_per_round_ttfb_reads_the_ttfb_histograms(synth: Any) -> None:
    trials = [
        _trial(synth, 0, "a", 2_000),
        _trial(synth, 1, "a", 4_000),
        _trial(synth, 2, "a", None),
    ]
    # Round 2 recorded no time to first byte: no value, not its full latency.
    assert per_round(trials, "ttfb_p50") == pytest.approx({0: 2.0, 1: 4.0}, rel=1e-3)
    assert per_round(trials, "p50") == pytest.approx({0: 100, 1: 100, 2: 100}, rel=1e-3)
    assert per_round(trials, "ttfb_p50", BYSTANDER) == {}


def test_a_streamed_reply_is_judged_by_its_first_byte(synth: Any) -> None:
    # Same full latency, first byte 100x sooner: the p50 ratio is 1, the ttfb_p50 ratio 100.
    trials = []
    for r in range(3):
        trials.append(_trial(synth, r, "buffered", FULL_US))
        trials.append(_trial(synth, r, "streamed", FULL_US / 100))
    pair = synth.pair(trials, variants=VARIANTS, knobs=[10], metric="ttfb_p50", min_ratio=50)
    analysis = analyse_pair(pair)
    ratio = analysis["ratios"]["10"]["streamed"]
    assert ratio["metric"] == "ttfb_p50"
    assert ratio["bad_over_good"] == pytest.approx(100, rel=0.01)
    assert analysis["expectation"]["passed"] is True
    same_end = synth.pair(trials, variants=VARIANTS, knobs=[10], metric="p50", min_ratio=50)
    assert analyse_pair(same_end)["ratios"]["10"]["streamed"]["bad_over_good"] == pytest.approx(1)


def test_the_metrics_are_part_of_the_run_format() -> None:
    assert set(TTFB_METRICS) == {"ttfb_p50", "ttfb_p90", "ttfb_p99"} <= set(METRICS)
    assert Expectation(metric="ttfb_p50", min_ratio=10).metric == "ttfb_p50"


def test_a_scenario_judging_ttfb_must_record_it(tmp_path: Path) -> None:
    body = """pair = "x"
request = "/x/{variant}?n={knob}"
%s
[expectation]
metric = "ttfb_p50"
min_ratio = 10
[profiles.quick]
knob_values = [1]
users = 1
round_seconds = 1
rounds = 3
"""
    path = tmp_path / "x.toml"
    path.write_text(body % "ttfb = true")
    assert scenario.load_scenario(path).expectation is not None
    path.write_text(body % "")
    with pytest.raises(UsageError, match="needs ttfb = true"):
        scenario.load_scenario(path)
