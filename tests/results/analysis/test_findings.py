"""Findings are computed from the analysis, never hard-coded."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pairbench.results.analysis.findings import (
    NO_DATA,
    pair_finding,
    reference_finding,
    reference_standing,
    scaling_finding,
    spectrum_finding,
)
from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.report.formatting import fmt_ratio


@pytest.fixture(scope="module")
def pair(demo_run: dict) -> dict:
    return demo_run["pairs"]["demo"]


@pytest.fixture(scope="module")
def analysis(pair: dict) -> dict:
    return analyse_pair(pair)


def test_scaling_finding_states_the_growth(pair: dict, analysis: dict) -> None:
    cells = analysis["per_variant"]
    growth = cells["100"]["lazy"]["p50_ms"] / cells["1"]["lazy"]["p50_ms"]
    join = cells["100"]["join"]["p50_ms"] / cells["1"]["join"]["p50_ms"]
    assert scaling_finding(pair, analysis) == (
        f"lazy p50 grows {fmt_ratio(growth)} from n=1 to n=100;"
        f" join stays flat ({fmt_ratio(join)} across the sweep)"
    )


def test_a_good_variant_that_grows_is_said_to_grow(synth: Any) -> None:
    model = {"lazy": lambda n: 10.0 * n, "join": lambda n: 1.0 * n}
    variants = (
        {"name": "lazy", "label": "", "role": "bad"},
        {"name": "join", "label": "", "role": "good"},
    )
    trials = synth.sweep(lambda v, n: model[v](n), variants=variants, rounds=2)
    pair = synth.pair(trials, variants=variants)
    assert "; join grows 1" in scaling_finding(pair, analyse_pair(pair))


def test_spectrum_finding_compares_tails(pair: dict, analysis: dict) -> None:
    text = spectrum_finding(pair, analysis, "100")
    assert text.startswith("at n=100 lazy p99 is ")
    assert text.endswith(
        " for join ("
        + fmt_ratio(
            analysis["per_variant"]["100"]["lazy"]["p99_ms"]
            / analysis["per_variant"]["100"]["join"]["p99_ms"]
        )
        + ")"
    )


def _with_ratio(pair: dict, ratio: float, low: float | None, high: float | None) -> dict:
    """An analysis whose only ratio, join at n=100, is the given one."""
    record = {"metric": "p50", "bad_over_good": ratio, "ci_low": low, "ci_high": high}
    return {"per_variant": {}, "ratios": {"100": {"join": {**record, "p_value": 0.03}}}}


REFERENCE = {"figure": "about 4x", "ratio": 4.0, "source": "SQLAlchemy's examples/performance"}


def test_reference_finding_puts_ours_beside_the_published_figure(pair: dict) -> None:
    assert reference_finding(pair, _with_ratio(pair, 6.1, 5.9, 6.6)) is None  # no reference
    cited = {**pair, "reference": {**REFERENCE, "url": None}}
    assert reference_finding(cited, _with_ratio(pair, 6.1, 5.9, 6.6)) == (
        "ours: 6.1x [5.9, 6.6] at n=100; published: about 4x (SQLAlchemy's examples/performance)"
    )


@pytest.mark.parametrize(
    ("ratio", "low", "high", "verdict"),
    [
        (6.1, 5.9, 6.6, "above the published figure (1.5x of it, beyond our interval)"),
        (2.0, 1.8, 2.2, "below the published figure (0.5x of it, beyond our interval)"),
        (4.2, 3.5, 5.0, "in line with it (our 95% interval includes 4.0x)"),
        (4.2, None, None, "too few rounds for an interval to compare"),
    ],
)
def test_reference_standing_says_where_ours_stands(
    pair: dict, ratio: float, low: float | None, high: float | None, verdict: str
) -> None:
    cited = {**pair, "reference": REFERENCE}
    line = reference_standing("demo", cited, _with_ratio(pair, ratio, low, high))
    assert line is not None and line.startswith("`demo`: ours ")
    assert line.endswith(f", published about 4x: {verdict}")
    unnumbered = {**pair, "reference": {**REFERENCE, "ratio": None}}
    line = reference_standing("demo", unnumbered, _with_ratio(pair, ratio, low, high))
    assert line is not None and line.endswith("no number to set them against")


def test_pair_finding_is_one_sentence_with_the_ratio(pair: dict, analysis: dict) -> None:
    text = pair_finding(pair, analysis)
    ratio = analysis["ratios"]["100"]["join"]["bad_over_good"]
    assert text.startswith("N+1 queries: lazy p50 grows")
    assert f"join's p50 is {fmt_ratio(ratio)} lower than lazy's (95% CI " in text
    assert text.endswith(".") and text.count(". ") == 0


def test_no_data_is_said_plainly(pair: dict) -> None:
    empty = copy.deepcopy(pair)
    for trial in empty["trials"]:
        trial["valid"] = False
    analysis = analyse_pair(empty)
    assert scaling_finding(empty, analysis) == NO_DATA
    assert pair_finding(empty, analysis) == f"N+1 queries: {NO_DATA}."


def test_a_reference_at_another_knob_value_is_not_compared(pair: dict) -> None:
    """A ratio that grows with the knob is set against the published one only at its point."""
    analysis = _with_ratio(pair, 4.2, 3.5, 5.0)
    elsewhere = {**pair, "reference": {**REFERENCE, "knob": 1_000_000}}
    line = reference_standing("demo", elsewhere, analysis)
    assert line is not None
    assert line.endswith("published at n=1000000, ours at n=100; not the same point, no comparison")
    close = {**pair, "reference": {**REFERENCE, "knob": 98}}  # within 5%: the same point
    line = reference_standing("demo", close, analysis)
    assert line is not None and line.endswith("in line with it (our 95% interval includes 4.0x)")
