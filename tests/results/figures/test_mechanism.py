"""The mechanism beside the latency: one panel per mechanism with data, a finding as title."""

from __future__ import annotations

from typing import Any

import pytest

from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.figures.mechanism import mechanism_figure, mechanism_finding


@pytest.fixture(scope="module")
def cpu(two_pair_run: dict) -> tuple[dict, dict]:
    pair = two_pair_run["pairs"]["cpu"]
    return pair, analyse_pair(pair)


def test_panels_are_latency_then_each_mechanism_with_data(n_plus_one_run: dict) -> None:
    pair = n_plus_one_run["pairs"]["n_plus_one"]
    figure = mechanism_figure(pair, analyse_pair(pair), "caption")
    assert figure is not None
    # connections opened are all zero (a pool): no panel for them.
    assert [a.get_title() for a in figure.axes] == [
        "p50 latency (ms)",
        "queries / request",
        "event-loop lag, mean (ms)",
    ]
    assert all(a.get_xlabel() == "rows per page (rows)" for a in figure.axes)


def test_finding_names_the_mechanism_that_differs_most(cpu: tuple[dict, dict]) -> None:
    pair, analysis = cpu
    assert mechanism_finding(pair, analysis) == (
        "at ms=50, mean event-loop lag 50.0 ms for inline vs 0.0500 ms for process"
    )
    figure = mechanism_figure(pair, analysis, "caption")
    assert figure is not None
    assert figure.get_suptitle().startswith("CPU work on the event loop: at ms=50, mean")
    assert "cache hit ratio (%)" in [a.get_title() for a in figure.axes]


def test_n_plus_one_finding_is_the_query_count(n_plus_one_run: dict) -> None:
    pair = n_plus_one_run["pairs"]["n_plus_one"]
    assert mechanism_finding(pair, analyse_pair(pair)) == (
        "at n=100, queries per request 101 for lazy vs 1.00 for join"
    )


def test_no_counters_no_figure(synth: Any) -> None:
    variants = (
        {"name": "a", "label": "", "role": "bad"},
        {"name": "b", "label": "", "role": "good"},
    )
    trials = [synth.trial(1, r, v["name"], [1000] * 10) for r in range(2) for v in variants]
    pair = synth.pair(trials, variants=variants, knobs=(1,))
    assert mechanism_figure(pair, analyse_pair(pair), "caption") is None
