"""The spectrum figure: one line per variant at a knob value, x in nines, a finding as title."""

from __future__ import annotations

from pairbench.results.analysis.findings import spectrum_finding
from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.figures.spectrum import SPECTRUM_TICKS, spectrum_figure


def test_spectrum_lines_ticks_and_title(demo_run: dict) -> None:
    pair = demo_run["pairs"]["demo"]
    analysis = analyse_pair(pair)
    figure = spectrum_figure(pair, analysis, "100", "caption")
    (axes,) = figure.axes
    assert [line.get_label().split(" ")[0] for line in axes.get_lines()] == [
        "lazy",
        "selectin",
        "join",
    ]
    assert axes.get_xscale() == "log" and axes.get_yscale() == "log"
    labels = [t.get_text() for t in axes.get_xticklabels()]
    assert labels[:3] == [SPECTRUM_TICKS[1.0], SPECTRUM_TICKS[10.0], SPECTRUM_TICKS[100.0]]
    assert figure.get_suptitle() == f"N+1 queries: {spectrum_finding(pair, analysis, '100')}"


def test_spectrum_without_a_knob_value_says_no_data(demo_run: dict) -> None:
    pair = demo_run["pairs"]["demo"]
    figure = spectrum_figure(pair, analyse_pair(pair), None, "caption")
    assert figure.get_suptitle().endswith("no valid measurements")
    assert not figure.axes[0].get_lines()
