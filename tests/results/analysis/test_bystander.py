"""The bystander's summary and name."""

from __future__ import annotations

from typing import Any

import pytest

from pairbench.results.analysis.bystander import bystander_name, bystander_summary, has_bystander
from pairbench.results.analysis.stats import analyse_pair


def test_summary_merges_the_bystander_histograms(synth: Any) -> None:
    trials = [
        synth.trial(1, 0, "inline", [1000] * 10, bystander_us=[2000] * 30),
        synth.trial(1, 1, "inline", [1000] * 10, bystander_us=[4000] * 10),
    ]
    summary = bystander_summary(trials)
    assert summary is not None
    assert summary["count"] == 40 and summary["errors"] == 0
    assert summary["p50_ms"] == pytest.approx(2.0, rel=1e-3)
    assert summary["p99_ms"] == pytest.approx(4.0, rel=1e-3)


def test_no_bystander_gives_none(synth: Any, demo_run: dict) -> None:
    assert bystander_summary([synth.trial(1, 0, "lazy", [1000])]) is None
    pair = demo_run["pairs"]["demo"]
    assert not has_bystander(analyse_pair(pair))
    assert bystander_name(pair) == "the bystander"


def test_name_comes_from_the_stored_scenario(synth: Any) -> None:
    pair = synth.busy_pair(rounds=2)
    assert bystander_name(pair) == "/busy/ping"
    assert has_bystander(analyse_pair(pair))
