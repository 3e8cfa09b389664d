"""The forest plot: one row per pair at its expectation's knob value."""

from __future__ import annotations

import copy

from pairbench.results.analysis.summary import analyse_run
from pairbench.results.figures.forest import forest_figure, forest_finding, forest_rows


def test_one_row_per_pair_at_the_expectation_knob(two_pair_run: dict) -> None:
    analyses = analyse_run(two_pair_run)
    rows = forest_rows(two_pair_run, analyses)
    assert [r.pair for r in rows] == ["demo", "busy"]
    demo, busy = rows
    ratio = analyses["demo"]["ratios"]["100"]["join"]
    assert demo.label == "N+1 queries\nn=100: lazy / join (p50)"
    assert (demo.ratio, demo.ci_low, demo.ci_high) == (
        ratio["bad_over_good"],
        ratio["ci_low"],
        ratio["ci_high"],
    )
    assert demo.claim == 5.0
    assert busy.label.endswith("ms=50: inline / process (bystander p99)")
    assert forest_finding(rows).startswith("the fix is faster (95% CI above 1x) in 2 of 2 pairs")


def test_forest_figure_is_log_with_a_line_at_one(two_pair_run: dict) -> None:
    figure = forest_figure(two_pair_run, analyse_run(two_pair_run), "caption")
    (axes,) = figure.axes
    assert axes.get_xscale() == "log"
    labels = {t.get_position()[1]: t.get_text() for t in axes.get_yticklabels()}
    assert labels[1].startswith("N+1") and labels[0].startswith("CPU work")  # first on top
    assert any(list(line.get_xdata()) == [1.0, 1.0] for line in axes.get_lines())


def test_a_pair_without_data_keeps_its_row(two_pair_run: dict) -> None:
    run = copy.deepcopy(two_pair_run)
    for trial in run["pairs"]["busy"]["trials"]:
        trial["valid"] = False
    rows = forest_rows(run, analyse_run(run))
    assert rows[1].ratio is None and rows[1].label.startswith("CPU work")
    assert "in 1 of 2 pairs" in forest_finding(rows)
    forest_figure(run, analyse_run(run), "caption")
