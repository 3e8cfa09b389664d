"""The expectation verdict at the expectation's knob value."""

from __future__ import annotations

from typing import Any

from pairbench.results.analysis.expectation import best_good
from pairbench.results.analysis.stats import analyse_pair


def _pair(demo_run: dict, **expectation: Any) -> dict:
    pair = dict(demo_run["pairs"]["demo"])
    pair["expectation"] = {**pair["expectation"], **expectation}
    return pair


def test_passes_when_every_good_variant_beats_the_minimum(demo_run: dict) -> None:
    verdict = analyse_pair(_pair(demo_run, knob="max", min_ratio=50))["expectation"]
    assert verdict["passed"] is True
    assert "at n=100" in verdict["detail"] and "join" in verdict["detail"]


def test_fails_when_a_good_variant_falls_short(demo_run: dict) -> None:
    # At n=1 lazy is only about 10x slower than join.
    verdict = analyse_pair(_pair(demo_run, knob=1, min_ratio=50))["expectation"]
    assert verdict["passed"] is False
    assert verdict["detail"].startswith("expected p50 of lazy / good >= 50x at n=1")


def test_middle_variants_are_not_held_to_it(demo_run: dict) -> None:
    # selectin is only ~20x faster at n=100, but it is a middle variant.
    assert analyse_pair(_pair(demo_run, min_ratio=50))["expectation"]["passed"] is True


def test_a_knob_value_never_measured_is_not_judged(demo_run: dict) -> None:
    verdict = analyse_pair(_pair(demo_run, knob=1000))["expectation"]
    assert verdict["passed"] is None
    assert "no valid data at n=1000" in verdict["detail"]


def test_no_expectation_is_not_judged(demo_run: dict) -> None:
    pair = {**demo_run["pairs"]["demo"], "expectation": None}
    verdict = analyse_pair(pair)["expectation"]
    assert verdict == {"passed": None, "detail": "no expectation declared"}


def test_best_good_is_a_good_variant_never_a_middle_one(demo_run: dict) -> None:
    pair = demo_run["pairs"]["demo"]
    ratio = {"metric": "p50", "ci_low": None, "ci_high": None, "p_value": None}
    analysis = {
        "ratios": {
            "100": {
                "selectin": {**ratio, "bad_over_good": 50.0},  # middle: faster, never the fix
                "join": {**ratio, "bad_over_good": 10.0},
            },
            "10": {"selectin": {**ratio, "bad_over_good": 5.0}},
        }
    }
    assert best_good(pair, analysis, "100") == "join"
    assert best_good(pair, analysis, "10") is None
    assert best_good(pair, analysis, "1") is None
