"""gate() and gate_interleaved(): pass on noise, fail on a real regression, inconclusive when
the data cannot tell."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pairbench.results.gate.gate import gate, gate_interleaved

NOISY_SIGMA = 0.15  # round-to-round drift three times the default
NOISY_ROUNDS = 8


@pytest.fixture(scope="module")
def base(synth: Any) -> dict:
    return synth.demo_run(1, "base")


def test_a_a_passes(synth: Any, base: dict) -> None:
    result = gate(base, synth.demo_run(2, "aa"))
    assert (result.outcome, result.exit_code) == ("pass", 0)
    (pair,) = result.pairs
    assert pair.reasons == ("no regression in 9 comparisons; expectation passed",)
    assert result.summary() == "gate PASS (1 pass)"
    assert result.design == "stored" and not result.calibrated


def test_a_thirty_percent_slowdown_of_a_good_variant_fails(synth: Any, base: dict) -> None:
    new = synth.demo_run(2, "slow", synth.slower("join", 1.3))
    result = gate(base, new, metrics="all")
    assert (result.outcome, result.exit_code) == ("regression", 1)
    (pair,) = result.pairs
    assert pair.outcome == "regression"
    assert {c.variant for c in pair.regressions} == {"join"}
    assert {c.metric for c in pair.regressions} == {"p50", "throughput"}
    assert pair.reasons[0].startswith("6 metrics slower by 5% or more; worst: join ")
    assert result.summary().startswith("gate REGRESSION (1 regression): demo: 6 metrics")
    headline = gate(base, new)
    assert {c.metric for c in headline.pairs[0].regressions} == {"p50"}


def test_a_two_percent_slowdown_is_below_the_minimum_effect(synth: Any, base: dict) -> None:
    result = gate(base, synth.demo_run(2, "slightly", synth.slower("join", 1.02)))
    assert result.exit_code == 0


def test_noisy_but_unchanged_passes(synth: Any) -> None:
    noisy = {"round_sigma": NOISY_SIGMA, "rounds": NOISY_ROUNDS}
    base = synth.demo_run(11, "noisy-base", **noisy)
    for seed in (12, 13, 14):
        assert gate(base, synth.demo_run(seed, f"noisy-{seed}", **noisy)).exit_code == 0


def test_invalid_data_is_inconclusive(synth: Any, base: dict) -> None:
    new = copy.deepcopy(synth.demo_run(2, "invalid"))
    for trial in new["pairs"]["demo"]["trials"]:
        trial["valid"] = False
        trial["invalid_reasons"] = ["generator CPU 97% > 90%"]
    result = gate(base, new)
    assert (result.outcome, result.exit_code) == ("inconclusive", 3)
    reasons = " ".join(result.pairs[0].reasons)
    assert "expectation not judged: no valid data at n=100" in reasons
    assert "no valid data for 9 comparisons, e.g. lazy p50 at n=1 in the new run" in reasons


def test_too_few_rounds_is_inconclusive_not_a_pass(synth: Any) -> None:
    base = synth.demo_run(1, "one", rounds=1)
    result = gate(base, synth.demo_run(2, "one-more", rounds=1))
    assert result.exit_code == 3
    assert "too few rounds to detect a change (1 in the baseline, 1 new)" in " ".join(
        result.pairs[0].reasons
    )


def test_a_missing_pair_and_an_interrupted_run_are_inconclusive(synth: Any, base: dict) -> None:
    empty = {**synth.demo_run(2, "empty"), "pairs": {}}
    result = gate(base, empty)
    assert result.exit_code == 3
    assert result.pairs[0].reasons == ("not measured in the new run",)
    interrupted = {**synth.demo_run(2, "cut"), "status": "interrupted"}
    result = gate(base, interrupted)
    assert result.exit_code == 3
    assert result.problems == ("new run cut is interrupted, not complete",)


def test_a_failed_expectation_fails(synth: Any, base: dict) -> None:
    new = copy.deepcopy(synth.demo_run(2, "claim"))
    new["pairs"]["demo"]["expectation"]["min_ratio"] = 1000.0
    result = gate(base, new)
    assert (result.pairs[0].outcome, result.exit_code) == ("failed", 1)
    assert result.pairs[0].reasons[0].startswith("expectation failed: expected p50 of lazy")


def test_regression_outranks_inconclusive(synth: Any) -> None:
    base = synth.run(
        {"demo": synth.pair(synth.sweep(seed=1)), "busy": synth.busy_pair(seed=1)}, "b"
    )
    slow = synth.pair(synth.sweep(synth.slower("join", 1.3), seed=2))
    new = synth.run({"demo": slow}, "n")  # the busy pair is missing
    result = gate(base, new)
    assert [p.outcome for p in result.pairs] == ["regression", "inconclusive"]
    assert result.exit_code == 1


def test_interleaved_a_a_passes_under_heavy_drift(synth: Any) -> None:
    for seed in (21, 22, 23, 24):
        run = synth.interleaved_run(seed, f"aa-{seed}", drift_sigma=0.3)
        result = gate_interleaved(run)
        assert result.exit_code == 0, result.summary()
        assert result.design == "interleaved"
        assert result.base_run_id == "HEAD (0000000000)"


def test_interleaved_catches_a_twenty_percent_slowdown_under_heavy_drift(synth: Any) -> None:
    run = synth.interleaved_run(25, "slow", new_model=synth.slower("join", 1.2), drift_sigma=0.3)
    result = gate_interleaved(run)
    assert result.exit_code == 1
    (pair,) = result.pairs
    assert {c.variant for c in pair.regressions} == {"join"}
    assert all(c.paired and c.p_adjusted is not None for c in pair.regressions)


def test_a_stored_run_is_not_an_interleaved_one(synth: Any, base: dict) -> None:
    with pytest.raises(ValueError, match="not an interleaved run"):
        gate_interleaved(base)


def test_a_pair_the_baseline_lacks_passes_with_nothing_to_compare(synth: Any) -> None:
    run = copy.deepcopy(synth.interleaved_run(26, "new-pair"))
    run["pairs"]["fresh"] = copy.deepcopy(run["pairs"]["demo"])
    result = gate_interleaved(run)
    fresh = next(p for p in result.pairs if p.pair == "fresh")
    assert (fresh.outcome, fresh.reasons) == ("pass", ("not in the baseline: nothing to compare",))


def test_a_metric_no_round_can_estimate_is_inconclusive(synth: Any) -> None:
    run = synth.interleaved_run(27, "few", requests=300)
    for record in (run["pairs"]["demo"], run["baseline"]["pairs"]["demo"]):
        record["expectation"]["metric"] = "p99"
    result = gate_interleaved(run)
    assert result.exit_code == 3
    assert "no comparison could be judged: p99 needs 500 requests per round" in " ".join(
        result.pairs[0].reasons
    )
