"""compare() and compare_interleaved(): NEW / BASE per cell, interval, adjusted p, verdict."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from pairbench.results.analysis.rounds import per_round
from pairbench.results.analysis.stats import cells_of
from pairbench.results.gate.compare import (
    FASTER,
    NO_CHANGE,
    NO_DATA,
    NOT_JUDGED,
    SLOWER,
    Comparison,
    adjust,
    compare,
    compare_interleaved,
    min_requests,
)


@pytest.fixture(scope="module")
def base(synth: Any) -> dict:
    return synth.demo_run(1, "base")


def _find(comparisons: list, variant: str, knob: str, metric: str) -> Any:
    (found,) = [c for c in comparisons if (c.variant, c.knob, c.metric) == (variant, knob, metric)]
    return found


def test_a_a_finds_no_change(synth: Any, base: dict) -> None:
    comparisons = compare(base, synth.demo_run(2, "aa"))
    assert len(comparisons) == 3 * 3 * 3  # variants x knob values x (p50, p99, throughput)
    # 300 requests a round estimate no p99 (it needs 500): those cells are not judged.
    assert {c.verdict for c in comparisons if c.metric != "p99"} == {NO_CHANGE}
    assert {c.verdict for c in comparisons if c.metric == "p99"} == {NOT_JUDGED}
    assert all(c.detectable and c.base_rounds == c.new_rounds == 4 for c in comparisons)
    tested = [c for c in comparisons if c.p_value is not None]
    assert len(tested) == 18 and all(c.p_adjusted >= c.p_value for c in tested)


def test_headline_only_compares_the_expectation_metric(synth: Any, base: dict) -> None:
    comparisons = compare(base, synth.demo_run(2, "aa"), metrics="headline")
    assert {c.metric for c in comparisons} == {"p50"}
    assert len(comparisons) == 3 * 3


def test_a_slowdown_is_slower_in_latency_and_throughput(synth: Any, base: dict) -> None:
    new = synth.demo_run(2, "slow", synth.slower("join", 1.3))
    comparisons = compare(base, new)
    p50 = _find(comparisons, "join", "n=10", "p50")
    assert p50.verdict == SLOWER and p50.unit == "ms"
    assert p50.ratio == pytest.approx(1.3, rel=0.1)
    assert p50.slowdown == p50.ratio and p50.slower_by == p50.ci_low and p50.ci_low > 1.1
    throughput = _find(comparisons, "join", "n=10", "throughput")
    assert throughput.verdict == SLOWER and throughput.unit == "req/s"
    assert throughput.ratio == pytest.approx(1 / 1.3, rel=0.1)
    assert throughput.slowdown == pytest.approx(1 / throughput.ratio)
    assert {c.verdict for c in comparisons if c.variant != "join"} <= {NO_CHANGE, NOT_JUDGED}


def test_a_speedup_is_faster(synth: Any, base: dict) -> None:
    comparisons = compare(base, synth.demo_run(2, "fast", synth.slower("lazy", 0.5)))
    assert _find(comparisons, "lazy", "n=100", "p50").verdict == FASTER
    assert _find(comparisons, "lazy", "n=100", "throughput").verdict == FASTER


def test_values_are_geometric_means_of_per_round_values(synth: Any, base: dict) -> None:
    new = synth.demo_run(2, "aa")
    found = _find(compare(base, new), "lazy", "n=100", "p99")
    rounds = per_round(cells_of(base["pairs"]["demo"])["100", "lazy"], "p99")
    assert found.base == pytest.approx(float(np.exp(np.mean(np.log(list(rounds.values()))))))


def test_missing_data_is_said(synth: Any, base: dict) -> None:
    new = copy.deepcopy(synth.demo_run(2, "invalid"))
    for trial in new["pairs"]["demo"]["trials"]:
        if trial["variant"] == "join" and trial["knob"] == 100:
            trial["valid"] = False
    found = _find(compare(base, new), "join", "n=100", "p50")
    assert found.verdict == NO_DATA and found.new is None and found.new_rounds == 0


def test_the_bystander_is_compared_where_loaded(synth: Any) -> None:
    base = synth.run({"busy": synth.busy_pair(seed=1)})
    new = synth.run({"busy": synth.busy_pair(seed=2)})
    metrics = {c.metric for c in compare(base, new)}
    assert metrics == {"p50", "p99", "throughput", "bystander p99"}
    headline = {c.metric for c in compare(base, new, metrics="headline")}
    assert headline == {"bystander p99"}


def test_a_quantile_needs_enough_requests_per_round(synth: Any) -> None:
    assert (min_requests("p50"), min_requests("p90"), min_requests("p99")) == (10, 50, 500)
    assert min_requests("throughput") == 1
    run = synth.interleaved_run(3, "few", requests=300)
    p99 = [c for c in compare_interleaved(run, metrics="all") if c.metric == "p99"]
    assert p99 and {c.verdict for c in p99} == {NOT_JUDGED}
    assert all(c.p_value is None and "needs 500 requests per round" in c.note for c in p99)
    assert "the fewest had 300" in p99[0].note
    enough = synth.interleaved_run(3, "many", requests=600, knobs=[10])
    assert all(c.verdict != NOT_JUDGED for c in compare_interleaved(enough, metrics="all"))


def test_interleaving_cancels_drift_that_two_runs_cannot(synth: Any) -> None:
    """The same 20% slowdown under round-to-round drift of 30%: paired rounds see it, the same
    values taken as two unrelated runs (what a stored baseline is) cannot tell it from noise."""
    run = synth.interleaved_run(
        5, "drift", new_model=synth.slower("join", 1.2), knobs=[100], drift_sigma=0.3
    )
    paired = _find(compare_interleaved(run), "join", "n=100", "p50")
    assert paired.paired and paired.verdict == SLOWER
    assert paired.ratio == pytest.approx(1.2, rel=0.05)
    base_run = {**run, "pairs": run["baseline"]["pairs"]}
    unpaired = _find(compare(base_run, run, metrics="headline"), "join", "n=100", "p50")
    assert not unpaired.paired and unpaired.verdict == NO_CHANGE
    assert (unpaired.ci_high - unpaired.ci_low) > 3 * (paired.ci_high - paired.ci_low)


def test_a_calibration_widens_the_stored_interval(synth: Any, base: dict) -> None:
    new = synth.demo_run(2, "aa")
    plain = _find(compare(base, new), "join", "n=10", "p50")
    spread = {("demo", "join", "n=10", "p50"): 0.1}
    widened = _find(compare(base, new, calibration=spread), "join", "n=10", "p50")
    assert widened.widened and not plain.widened
    assert widened.ci_low < plain.ci_low and widened.ci_high > plain.ci_high
    assert widened.ratio == pytest.approx(plain.ratio)


def _cell(p: float) -> Comparison:
    return Comparison(
        "demo", "join", "n=1", "p50", 1.0, 1.2, 1.2, 1.1, 1.3, p, 5, 5, True, NO_CHANGE, True
    )


def test_benjamini_hochberg_adjusts_across_the_whole_comparison() -> None:
    adjusted = adjust([_cell(p) for p in (0.01, 0.04, 0.03, 0.5)], 0.05)
    assert [c.p_adjusted for c in adjusted] == pytest.approx([0.04, 0.0533333, 0.0533333, 0.5])
    assert [c.verdict for c in adjusted] == [SLOWER, NO_CHANGE, NO_CHANGE, NO_CHANGE]
    # Alone, the 0.04 would have been significant.
    assert adjust([_cell(0.04)], 0.05)[0].verdict == SLOWER
