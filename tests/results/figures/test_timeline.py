"""Each variant over time: one row per variant, a finding about round-to-round stability."""

from __future__ import annotations

import copy

from pairbench.results.figures.timeline import _band_ms, timeline_figure, timeline_finding
from pairbench.results.io import histograms


def test_one_row_per_variant_with_latency_and_rates(demo_run: dict) -> None:
    pair = demo_run["pairs"]["demo"]
    figure = timeline_figure(pair, "caption")
    assert len(figure.axes) == 2 * len(pair["variants"])
    latency, rates = figure.axes[0], figure.axes[1]
    assert latency.get_ylabel() == "lazy\nlatency (ms)"
    assert rates.get_ylabel() == "per second"
    assert figure.axes[-1].get_xlabel() == "time since the first trial (s)"
    # Lines break where the knob changes: three p50 segments for the three knob values.
    assert len([line for line in latency.get_lines() if line.get_linestyle() == "-"]) == 3


def test_finding_reports_spread_and_invalid_trials(demo_run: dict) -> None:
    pair = copy.deepcopy(demo_run["pairs"]["demo"])
    pair["trials"][0]["valid"] = False
    text = timeline_finding(pair)
    assert text.startswith("round-to-round p50 spread at most 1.")
    assert text.endswith("; 1 of 36 trials invalid")
    timeline_figure(pair, "caption")  # an invalid trial is drawn, marked


def test_no_trials_no_data() -> None:
    pair = {"title": "t", "variants": [{"name": "a", "role": "bad"}], "trials": []}
    assert timeline_finding(pair) == "no valid measurements"
    assert len(timeline_figure(pair, "caption").axes) == 2


def test_the_bands_are_the_summarys_percentiles(demo_run: dict) -> None:
    # The rows read only p50, p90 and p99 of each trial: the same values summary_ms gives.
    for trial in demo_run["pairs"]["demo"]["trials"]:
        summary = histograms.summary_ms(histograms.decode(trial["histogram"]))
        assert _band_ms(trial) == {k: summary[k] for k in ("p50_ms", "p90_ms", "p99_ms")}
    empty = histograms.new_histogram().encode()
    assert _band_ms({"histogram": empty}) == dict.fromkeys(("p50_ms", "p90_ms", "p99_ms"))
