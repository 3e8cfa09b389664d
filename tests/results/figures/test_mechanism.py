"""The mechanism beside the latency: one panel per mechanism with data, a finding as title."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.figures.mechanism import mechanism_figure, mechanism_finding


@pytest.fixture(scope="module")
def busy(two_pair_run: dict) -> tuple[dict, dict]:
    pair = two_pair_run["pairs"]["busy"]
    return pair, analyse_pair(pair)


def test_panels_are_latency_then_each_mechanism_with_data(demo_run: dict) -> None:
    pair = demo_run["pairs"]["demo"]
    figure = mechanism_figure(pair, analyse_pair(pair), "caption")
    assert figure is not None
    # connections opened are all zero (a pool): no panel for them.
    assert [a.get_title() for a in figure.axes] == [
        "p50 latency (ms)",
        "SQL statements / request",
        "event-loop lag, mean (ms)",
    ]
    assert all(a.get_xlabel() == "rows per page (rows)" for a in figure.axes)


def test_finding_names_the_mechanism_that_differs_most(busy: tuple[dict, dict]) -> None:
    pair, analysis = busy
    assert mechanism_finding(pair, analysis) == (
        "event-loop lag, mean 50.0 ms vs 0.0500 ms (process) at ms=50"
    )
    figure = mechanism_figure(pair, analysis, "caption")
    assert figure is not None
    assert figure.get_suptitle().startswith(
        "CPU work on the event loop: event-loop lag, mean 50.0 ms"
    )
    assert "cache hit ratio (%)" in [a.get_title() for a in figure.axes]


def test_demo_finding_is_the_query_count(demo_run: dict) -> None:
    pair = demo_run["pairs"]["demo"]
    assert mechanism_finding(pair, analyse_pair(pair)) == (
        "101 SQL statements per request vs 1.00 (join) at n=100"
    )


def test_title_names_the_declared_headline_counter(demo_run: dict) -> None:
    pair = copy.deepcopy(demo_run["pairs"]["demo"])
    statements = {"metric": "q", "label": "SQL statements", "unit": "statements"}
    lag = {"metric": "l", "label": "event-loop lag, mean", "unit": "ms"}
    pair["counters"] = {
        "loop_lag_seconds_sum": {**lag, "kind": "delta", "per": "trial", "scale": 1000.0},
        "queries": {**statements, "kind": "delta", "per": "request", "scale": 1},
    }
    pair["lesson"] = ["queries", "loop_lag_seconds_sum"]
    figure = mechanism_figure(pair, analyse_pair(pair), "caption")
    assert figure is not None
    assert figure.get_suptitle() == (
        "N+1 queries: 101 SQL statements per request vs 1.00 (join) at n=100"
    )
    titles = [a.get_title() for a in figure.axes]
    assert titles == ["p50 latency (ms)", "SQL statements / request", "event-loop lag, mean (ms)"]


def test_no_counters_no_figure(synth: Any) -> None:
    variants = (
        {"name": "a", "label": "", "role": "bad"},
        {"name": "b", "label": "", "role": "good"},
    )
    trials = [synth.trial(1, r, v["name"], [1000] * 10) for r in range(2) for v in variants]
    pair = synth.pair(trials, variants=variants, knobs=(1,))
    assert mechanism_figure(pair, analyse_pair(pair), "caption") is None


def test_title_quotes_the_verified_count_over_the_count_under_load(demo_run: dict) -> None:
    """Under load a window's edges cut requests (101 per request); verification counted one
    request alone (100 exactly): the title quotes what verification counted."""
    pair = copy.deepcopy(demo_run["pairs"]["demo"])
    checks = pair["verification"]["checks"]
    checks += [
        {"name": "queries_per_request", "knob": 100, "variant": "lazy", "passed": True,
         "detail": "queries: 100, expected 100", "value": 100},
        {"name": "queries_per_request", "knob": 100, "variant": "join", "passed": True,
         "detail": "queries: 1, expected 1", "value": 1},
    ]  # fmt: skip
    assert mechanism_finding(pair, analyse_pair(pair)) == (
        "100 SQL statements per request vs 1 (join) at n=100"
    )
    checks[-1]["passed"] = False  # a failed check is no figure to quote: the load's figures
    assert mechanism_finding(pair, analyse_pair(pair)).startswith("101 SQL statements")
