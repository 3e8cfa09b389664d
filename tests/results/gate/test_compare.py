"""compare(): NEW / BASE per pair, variant, knob value and metric, with a CI and a verdict."""

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
    SLOWER,
    compare,
    smallest_p,
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
    assert {c.verdict for c in comparisons} == {NO_CHANGE}
    assert all(c.detectable and c.base_rounds == c.new_rounds == 4 for c in comparisons)


def test_a_slowdown_is_slower_in_latency_and_throughput(synth: Any, base: dict) -> None:
    new = synth.demo_run(2, "slow", synth.slower("join", 1.3))
    comparisons = compare(base, new)
    p50 = _find(comparisons, "join", "n=10", "p50")
    assert p50.verdict == SLOWER and p50.unit == "ms"
    assert p50.ratio == pytest.approx(1.3, rel=0.1)
    assert p50.slower_by == p50.ci_low and p50.ci_low > 1.1
    throughput = _find(comparisons, "join", "n=10", "throughput")
    assert throughput.verdict == SLOWER and throughput.unit == "req/s"
    assert throughput.ratio == pytest.approx(1 / 1.3, rel=0.1)
    assert throughput.slower_by == pytest.approx(1 / throughput.ci_high)
    assert {c.verdict for c in comparisons if c.variant != "join"} == {NO_CHANGE}


def test_a_speedup_is_faster(synth: Any, base: dict) -> None:
    comparisons = compare(base, synth.demo_run(2, "fast", synth.slower("lazy", 0.5)))
    assert _find(comparisons, "lazy", "n=100", "p50").verdict == FASTER
    assert _find(comparisons, "lazy", "n=100", "throughput").verdict == FASTER


def test_values_are_medians_of_per_round_values(synth: Any, base: dict) -> None:
    new = synth.demo_run(2, "aa")
    found = _find(compare(base, new), "lazy", "n=100", "p99")
    rounds = per_round(cells_of(base["pairs"]["demo"])["100", "lazy"], "p99")
    assert found.base == pytest.approx(float(np.median(list(rounds.values()))))


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


def test_smallest_p_needs_four_rounds_a_side_for_five_percent() -> None:
    assert smallest_p(3, 3) > 0.05
    assert smallest_p(4, 4) < 0.05
    assert smallest_p(0, 8) == 1.0
