"""Findings are computed from the analysis, never hard-coded."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pairbench.results.analysis.findings import (
    NO_DATA,
    best_good,
    pair_finding,
    scaling_finding,
    spectrum_finding,
)
from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.report.formatting import fmt_ratio


@pytest.fixture(scope="module")
def pair(n_plus_one_run: dict) -> dict:
    return n_plus_one_run["pairs"]["n_plus_one"]


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


def test_best_good_prefers_good_roles(pair: dict, analysis: dict) -> None:
    assert best_good(pair, analysis, "100") == "join"


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
