"""Calibration: what A/A runs say about the gate's power, its false alarms and between-run drift."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pairbench.results.gate import calibration


def test_the_detectable_slowdown_shrinks_with_rounds_and_grows_with_noise() -> None:
    five = calibration.detectable_slowdown(0.05, 5, 4, 0.05)
    ten = calibration.detectable_slowdown(0.05, 10, 4, 0.05)
    noisy = calibration.detectable_slowdown(0.10, 5, 4, 0.05)
    many = calibration.detectable_slowdown(0.05, 5, 40, 0.05)
    assert five is not None and ten is not None and noisy is not None and many is not None
    assert 1.05 < ten < five < noisy
    assert many > five  # more comparisons: a stricter bar for each
    # No noise at all: only the minimum effect is left.
    assert calibration.detectable_slowdown(0.0, 5, 4, 0.05) == pytest.approx(1.05)
    assert calibration.detectable_slowdown(0.05, 1, 4, 0.05) is None


def test_an_a_a_run_gives_each_comparison_its_noise_and_a_false_alarm_rate(synth: Any) -> None:
    run = synth.interleaved_run(31, "aa", drift_sigma=0.3, trial_sigma=0.03)
    noise = calibration.interleaved_noise(run, 0.05)
    rows = noise["comparisons"]
    assert {r["variant"] for r in rows} == {"lazy", "join", "selectin"}
    assert noise["family"] == len(rows) == 9  # 3 variants x 3 knob values, p50 (the headline)
    # The round drift is shared by both sides: the paired noise is the trials' own, ~3% x sqrt 2.
    assert all(0.01 < r["log_sd"] < 0.09 for r in rows)
    assert all(r["detectable_slowdown"] > 1.05 for r in rows)
    assert noise["patterns"] == 2**5  # every way of swapping the sides of 5 rounds
    assert noise["false_alarm_rate"] is not None and noise["false_alarm_rate"] <= 0.1


def test_a_systematic_difference_shows_as_false_alarms(synth: Any) -> None:
    """Two 'identical' servers of which one is 8% slower is not an A/A: most sign patterns keep
    some of that offset, but a calibration run shows it in its ratios."""
    slow = synth.slower("join", 1.08)
    run = synth.interleaved_run(32, "skewed", new_model=slow, drift_sigma=0.3, trial_sigma=0.01)
    rows = calibration.interleaved_noise(run, 0.05)["comparisons"]
    join = [r for r in rows if r["variant"] == "join"]
    assert all(r["ratio"] == pytest.approx(1.08, rel=0.03) for r in join)
    assert any(r["flagged"] for r in join)


def test_between_run_spread_is_what_the_rounds_do_not_explain(synth: Any) -> None:
    runs = [synth.demo_run(seed, f"r{seed}") for seed in (41, 42, 43)]
    shifted = copy.deepcopy(runs)
    for factor, run in zip((0.8, 1.0, 1.25), shifted, strict=True):
        for trial in run["pairs"]["demo"]["trials"]:
            if trial["variant"] == "join":
                values = synth.encode_scaled(trial["histogram"], factor)
                trial["histogram"] = values
    calm = {
        (r["variant"], r["knob"], r["metric"]): r for r in calibration.between_run(runs)["demo"]
    }
    moved = {
        (r["variant"], r["knob"], r["metric"]): r for r in calibration.between_run(shifted)["demo"]
    }
    key = ("join", "n=100", "p50")
    assert moved[key]["log_sd"] > 0.15 > calm[key]["log_sd"]
    assert moved[("lazy", "n=100", "p50")]["log_sd"] == pytest.approx(
        calm[("lazy", "n=100", "p50")]["log_sd"]
    )


def test_a_stored_calibration_is_found_for_runs_of_the_same_machine_and_profile(
    synth: Any, tmp_path: Path
) -> None:
    separate = [synth.demo_run(seed, f"r{seed}") for seed in (51, 52, 53)]
    aa = synth.interleaved_run(54, "aa")
    doc = calibration.document(aa, separate, 0.05)
    assert doc["profile"] == "quick" and doc["separate_runs"] == ["r51", "r52", "r53"]
    spread = doc["pairs"]["demo"]["headline_spread"]
    assert len(spread["ratios"]) == 3 and spread["cv"] is not None
    assert spread["rerun_inside"][1] == 6
    path = calibration.store(doc, tmp_path, aa)
    assert path.exists()
    found = calibration.lookup(separate[0], tmp_path)
    assert found is not None and ("demo", "join", "n=100", "p50") in found
    elsewhere = copy.deepcopy(separate[0])
    elsewhere["metadata"]["machine"]["cpu_model"] = "Another CPU"
    assert calibration.lookup(elsewhere, tmp_path) is None
    other_profile = {**separate[0], "profile": "standard"}
    assert calibration.lookup(other_profile, tmp_path) is None
