"""A whole run at a glance: each pair's analysis and its ratio per knob value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from .expectation import best_good
from .knobs import knob_text
from .stats import analyse_pair

Analyses = Mapping[str, Mapping[str, Any]]


class SummaryRow(NamedTuple):
    """One pair at one knob value: bad / best good variant, with interval and p-value."""

    pair: str
    knob: str  # e.g. "n=200"
    bad: str
    good: str | None  # None when no round compares the bad variant with another one
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    rounds: int


def analyse_run(run: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Pair name -> freshly computed analysis (the stored `analysis` is never trusted)."""
    return {name: analyse_pair(pair) for name, pair in run["pairs"].items()}


def summary_lines(run: Mapping[str, Any], analyses: Analyses | None = None) -> list[SummaryRow]:
    """Rows for a compact table, in run order then knob order: bad / best good per knob value."""
    analyses = analyses if analyses is not None else analyse_run(run)
    rows = []
    for name, pair in run["pairs"].items():
        analysis = analyses[name]
        for key in analysis["per_variant"]:
            good = best_good(pair, analysis, key)
            ratio = analysis["ratios"][key][good] if good is not None else {}
            rows.append(
                SummaryRow(
                    pair=name,
                    knob=knob_text(pair, key),
                    bad=pair["bad"],
                    good=good,
                    ratio=ratio.get("bad_over_good"),
                    ci_low=ratio.get("ci_low"),
                    ci_high=ratio.get("ci_high"),
                    p_value=ratio.get("p_value"),
                    rounds=int(ratio.get("rounds", 0)),
                )
            )
    return rows
