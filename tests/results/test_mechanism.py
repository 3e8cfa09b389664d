"""Mechanism figures: summed counters over summed requests, only where the counters exist."""

from __future__ import annotations

from typing import Any

import pytest

from pairbench.results.mechanism import MECHANISMS, mechanism_summary, shown


def test_every_figure_from_counters(synth: Any) -> None:
    counters = {
        "queries": 30.0,
        "db_connections_opened": 5.0,
        "cache_hits": 6.0,
        "cache_misses": 2.0,
        "loop_lag_seconds_sum": 0.02,
        "loop_lag_samples": 4.0,
    }
    trials = [
        synth.trial(1, 0, "lazy", [1000] * 8, counters=counters, errors=2),
        synth.trial(1, 1, "lazy", [1000] * 10, counters=counters),
    ]
    summary = mechanism_summary(trials)
    assert list(summary) == [m.key for m in MECHANISMS]
    assert summary["queries_per_request"] == pytest.approx(60 / 20)
    assert summary["connections_per_request"] == pytest.approx(10 / 20)
    assert summary["cache_hit_ratio"] == pytest.approx(0.75)
    assert summary["loop_lag_ms"] == pytest.approx(5.0)
    assert summary["error_ratio"] == pytest.approx(2 / 20)


def test_trials_without_a_counter_do_not_dilute_it(synth: Any) -> None:
    trials = [
        synth.trial(1, 0, "lazy", [1000] * 10, queries=50),
        synth.trial(1, 1, "lazy", [1000] * 10),  # /metrics not scraped
    ]
    summary = mechanism_summary(trials)
    assert summary["queries_per_request"] == 5.0
    assert summary["cache_hit_ratio"] is None  # no hits or misses reported: no ratio
    assert summary["loop_lag_ms"] is None


def test_no_cache_traffic_gives_no_hit_ratio(synth: Any) -> None:
    counters = {"cache_hits": 0.0, "cache_misses": 0.0}
    trial = synth.trial(1, 0, "lazy", [1000], counters=counters)
    assert mechanism_summary([trial])["cache_hit_ratio"] is None


def test_shown_keeps_figures_with_a_non_zero_value() -> None:
    cells = [
        {"queries_per_request": 2.0, "error_ratio": 0.0, "cache_hit_ratio": None},
        {"queries_per_request": 1.0, "error_ratio": 0.0, "connections_per_request": 0.0},
    ]
    assert [m.key for m in shown(cells)] == ["queries_per_request"]
