"""analyse_pair: the documented `analysis` object, computed from the valid trials only."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pairbench.results.analysis.stats import analyse_pair, merged_histograms

RELATIVE_PRECISION = 1e-3
CELL_KEYS = {
    "count",
    "rps",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "mechanism",
    "ttfb_p50_ms",
    "statuses",
    "error_ratio",
    "bystander",
    "rounds",
}
RATIO_KEYS = {
    "metric",
    "subject",
    "bad_over_good",
    "ci_low",
    "ci_high",
    "p_value",
    "rounds",
    "throughput_good_over_bad",
    "throughput_ci_low",
    "throughput_ci_high",
    "throughput_p_value",
}
ROUNDS = 4


def constant_ms(latencies: dict[str, float]) -> Any:
    return lambda variant, knob: latencies[variant]


def constant_pair(synth: Any, bad_us: float, good_us: float, rounds: int = ROUNDS) -> dict:
    """lazy and join with constant latencies: every round measures the same numbers."""
    variants = (
        {"name": "lazy", "label": "", "role": "bad"},
        {"name": "join", "label": "", "role": "good"},
    )
    trials = [
        synth.trial(knob, r, name, [value] * 100, queries=q * 100)
        for knob in (1, 10)
        for r in range(rounds)
        for name, value, q in (("lazy", bad_us, 1 + knob), ("join", good_us, 1))
    ]
    return synth.pair(trials, variants=variants, knobs=(1, 10))


@pytest.fixture(scope="module")
def analysis(demo_run: dict) -> dict:
    return analyse_pair(demo_run["pairs"]["demo"])


def test_analysis_has_the_documented_shape(analysis: dict) -> None:
    assert set(analysis) == {"per_variant", "ratios", "trends", "expectation"}
    assert list(analysis["per_variant"]) == ["1", "10", "100"]
    for cells in analysis["per_variant"].values():
        assert list(cells) == ["lazy", "selectin", "join"]
        assert all(set(cell) == CELL_KEYS for cell in cells.values())
    for ratios in analysis["ratios"].values():
        assert list(ratios) == ["selectin", "join"]
        assert all(set(r) == RATIO_KEYS for r in ratios.values())
    assert set(analysis["expectation"]) == {"passed", "detail"}


def test_constant_latencies_give_exact_percentiles_and_ratios(synth: Any) -> None:
    result = analyse_pair(constant_pair(synth, bad_us=20_000, good_us=5000))
    join = result["per_variant"]["10"]["join"]
    for key in ("p50_ms", "p99_ms", "max_ms", "mean_ms"):
        assert join[key] == pytest.approx(5.0, rel=RELATIVE_PRECISION)
    assert join["mechanism"]["queries"] == 1.0
    assert result["per_variant"]["10"]["lazy"]["mechanism"]["queries"] == 11.0
    ratio = result["ratios"]["10"]["join"]
    assert ratio["bad_over_good"] == pytest.approx(4.0, rel=2 * RELATIVE_PRECISION)
    assert ratio["ci_low"] == ratio["ci_high"] == ratio["bad_over_good"]
    assert ratio["rounds"] == ROUNDS


def test_merged_counts_equal_the_sum_of_trial_counts(demo_run: dict, analysis: dict) -> None:
    pair = demo_run["pairs"]["demo"]
    for key, cells in analysis["per_variant"].items():
        for variant, cell in cells.items():
            trials = [
                t for t in pair["trials"] if str(t["knob"]) == key and t["variant"] == variant
            ]
            assert cell["count"] == sum(t["requests"] for t in trials)  # no errors recorded
            assert cell["rps"] == pytest.approx(
                sum(t["requests"] for t in trials) / sum(t["elapsed_s"] for t in trials)
            )
            assert cell["rounds"] == ROUNDS
    assert (
        merged_histograms(pair, "10")["lazy"].get_total_count()
        == analysis["per_variant"]["10"]["lazy"]["count"]
    )


def test_the_growing_gap_is_measured(analysis: dict) -> None:
    # The model: lazy 10 ms * sqrt(n), join 1 ms; so lazy/join is about 10, 32 and 100.
    for key, expected in (("1", 10.0), ("10", 31.6), ("100", 100.0)):
        ratio = analysis["ratios"][key]["join"]
        assert ratio["bad_over_good"] == pytest.approx(expected, rel=0.15)
        assert ratio["ci_low"] <= ratio["bad_over_good"] <= ratio["ci_high"]
        assert ratio["ci_low"] > 1.0
        assert ratio["p_value"] < 0.05
    assert analysis["expectation"]["passed"] is True


def test_invalid_trials_are_excluded(synth: Any, demo_run: dict, analysis: dict) -> None:
    pair = copy.deepcopy(demo_run["pairs"]["demo"])
    # A saturated-generator trial with absurd latencies, in a round of its own.
    pair["trials"].append(
        synth.trial(
            100, 9, "join", [5_000_000] * 500, valid=False, reasons=["generator CPU 97% > 90%"]
        )
    )
    # A valid round turned invalid: its numbers must vanish from the statistics.
    dropped = next(t for t in pair["trials"] if t["knob"] == 100 and t["variant"] == "lazy")
    dropped["valid"] = False
    result = analyse_pair(pair)
    join = result["per_variant"]["100"]["join"]
    assert join == analysis["per_variant"]["100"]["join"]
    lazy = result["per_variant"]["100"]["lazy"]
    assert lazy["count"] == analysis["per_variant"]["100"]["lazy"]["count"] - dropped["requests"]
    assert lazy["rounds"] == ROUNDS - 1
    assert result["ratios"]["100"]["join"]["rounds"] == ROUNDS - 1


def test_no_valid_data_gives_an_unjudged_expectation(synth: Any, demo_run: dict) -> None:
    pair = copy.deepcopy(demo_run["pairs"]["demo"])
    for trial in pair["trials"]:
        trial["valid"] = False
    result = analyse_pair(pair)
    assert result["per_variant"] == {} and result["ratios"] == {}
    assert result["expectation"]["passed"] is None
    assert "no valid data at n=100 for join" in result["expectation"]["detail"]


def test_counters_absent_give_no_queries_per_request(synth: Any) -> None:
    variants = (
        {"name": "a", "label": "", "role": "bad"},
        {"name": "b", "label": "", "role": "good"},
    )
    trials = [synth.trial(1, r, v["name"], [1000] * 10) for r in range(2) for v in variants]
    result = analyse_pair(synth.pair(trials, variants=variants, knobs=(1,)))
    assert result["per_variant"]["1"]["a"]["mechanism"] == {}  # nothing reported, nothing described


def test_ratios_follow_the_expectation_metric(synth: Any) -> None:
    pair = constant_pair(synth, bad_us=20_000, good_us=5000)
    pair["expectation"]["metric"] = "p99"
    assert analyse_pair(pair)["ratios"]["1"]["join"]["metric"] == "p99"
    pair["expectation"]["metric"] = "p42"
    with pytest.raises(ValueError, match="unknown expectation metric"):
        analyse_pair(pair)


def test_analysis_is_deterministic(demo_run: dict, analysis: dict) -> None:
    assert analyse_pair(demo_run["pairs"]["demo"]) == analysis


def test_bystander_subject_compares_the_bystanders_latency(synth: Any) -> None:
    pair = synth.busy_pair()
    result = analyse_pair(pair)
    cells = result["per_variant"]["50"]
    inline, process = cells["inline"]["bystander"], cells["process"]["bystander"]
    assert set(inline) == {"count", "errors", "p50_ms", "p90_ms", "p99_ms"}
    assert inline["count"] == sum(
        t["bystander"]["requests"]
        for t in pair["trials"]
        if t["knob"] == 50 and t["variant"] == "inline"
    )
    ratio = result["ratios"]["50"]["process"]
    assert (ratio["metric"], ratio["subject"]) == ("p99", "bystander")
    # The variants' own latencies are alike; their bystanders' are 100x apart.
    assert cells["inline"]["p99_ms"] < cells["process"]["p99_ms"]
    assert ratio["bad_over_good"] == pytest.approx(inline["p99_ms"] / process["p99_ms"], rel=0.2)
    assert ratio["bad_over_good"] > 100
    assert result["expectation"]["passed"] is True
    assert result["expectation"]["detail"].startswith("bystander p99 of inline / good >= 5.0x")


def test_bystander_subject_without_bystander_data_is_not_judged(synth: Any) -> None:
    pair = synth.busy_pair()
    for trial in pair["trials"]:
        trial["bystander"] = None
    result = analyse_pair(pair)
    assert result["ratios"] == {}
    assert result["per_variant"]["50"]["inline"]["bystander"] is None
    assert result["expectation"]["passed"] is None


def test_mechanism_figures_per_cell(synth: Any) -> None:
    cells = analyse_pair(synth.busy_pair())["per_variant"]["10"]
    assert cells["inline"]["mechanism"]["loop_lag_seconds_sum"] == pytest.approx(10.0)  # ms
    assert cells["process"]["mechanism"]["loop_lag_seconds_sum"] == pytest.approx(0.05)
    assert cells["inline"]["mechanism"]["cache_hits"] == pytest.approx(90.0)  # percent
    assert "queries" not in cells["inline"]["mechanism"]  # no trial reports queries
    assert cells["inline"]["error_ratio"] == 0.0


def test_throughput_ratio_is_good_over_bad(analysis: dict) -> None:
    for key, ratios in analysis["ratios"].items():
        bad_rps = analysis["per_variant"][key]["lazy"]["rps"]
        for name, ratio in ratios.items():
            good_rps = analysis["per_variant"][key][name]["rps"]
            # per-round medians, not pooled rates, but on the same side of 1 and close
            assert (ratio["throughput_good_over_bad"] > 1) == (good_rps > bad_rps)
