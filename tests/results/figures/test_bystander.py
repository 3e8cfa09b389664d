"""The bystander's latency against the knob."""

from __future__ import annotations

from pairbench.results.analysis.findings import bystander_finding
from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.figures.bystander import bystander_figure
from pairbench.results.report.formatting import fmt_ms, fmt_ratio


def test_bystander_figure_and_finding(two_pair_run: dict) -> None:
    pair = two_pair_run["pairs"]["busy"]
    analysis = analyse_pair(pair)
    cells = analysis["per_variant"]["50"]
    inline, process = (
        cells["inline"]["bystander"]["p99_ms"],
        cells["process"]["bystander"]["p99_ms"],
    )
    finding = bystander_finding(pair, analysis)
    assert finding == (
        f"at ms=50 /busy/ping p99 is {fmt_ms(inline)} under inline vs {fmt_ms(process)} "
        f"under process ({fmt_ratio(inline / process)})"
    )
    figure = bystander_figure(pair, analysis, "caption")
    assert figure is not None
    assert " ".join(figure.get_suptitle().split()) == f"CPU work on the event loop: {finding}"
    (axes,) = figure.axes
    assert axes.get_ylabel() == "/busy/ping latency (ms)"
    assert axes.get_yscale() == "log"


def test_no_bystander_no_figure(demo_run: dict) -> None:
    pair = demo_run["pairs"]["demo"]
    assert bystander_figure(pair, analyse_pair(pair), "caption") is None
