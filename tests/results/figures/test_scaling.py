"""The scaling figure: computed title, labelled axes, log where latency spans decades."""

from __future__ import annotations

import pytest

from pairbench.results.analysis.findings import scaling_finding
from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.figures.canvas import caption
from pairbench.results.figures.scaling import scaling_figure


@pytest.fixture(scope="module")
def pair(demo_run: dict) -> dict:
    return demo_run["pairs"]["demo"]


def test_scaling_figure_title_and_axes(demo_run: dict, pair: dict) -> None:
    analysis = analyse_pair(pair)
    figure = scaling_figure(pair, analysis, caption(demo_run))
    assert figure.get_suptitle() == f"N+1 queries: {scaling_finding(pair, analysis)}"
    latency, throughput = figure.axes
    assert latency.get_yscale() == "log" and latency.get_xscale() == "log"
    assert latency.get_xlabel() == "rows per page (rows)"
    assert latency.get_ylabel() == "latency (ms)"
    assert throughput.get_ylabel() == "throughput (req/s)"
