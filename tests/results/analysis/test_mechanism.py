"""Mechanism figures from counter metadata alone: per request, per named counters, per trial."""

from __future__ import annotations

from typing import Any

import pytest

from pairbench.results.analysis.mechanism import (
    ERRORS,
    counter_value,
    lesson,
    mechanism_summary,
    shown,
)


def _spec(per: Any, kind: str = "delta", scale: float = 1.0, label: str = "x") -> dict[str, Any]:
    return {"metric": "m", "label": label, "unit": "u", "kind": kind, "per": per, "scale": scale}


def test_v1_counters_through_the_upgraded_metadata(synth: Any) -> None:
    counters = {
        "queries": 30.0,
        "db_connections_opened": 5.0,
        "cache_hits": 6.0,
        "cache_misses": 2.0,
        "loop_lag_seconds_sum": 0.02,
        "loop_lag_samples": 4.0,
    }
    trials = [
        synth.trial(1, 0, "lazy", [1000] * 8, counters=counters, errors=2),
        synth.trial(1, 1, "lazy", [1000] * 10, counters=counters),
    ]
    pair = synth.pair(trials)
    summary = mechanism_summary(pair, trials)
    values = summary["mechanism"]
    assert values["queries"] == pytest.approx(60 / 20)
    assert values["db_connections_opened"] == pytest.approx(10 / 20)
    assert values["cache_hits"] == pytest.approx(75.0)  # scale 100: a percentage
    assert values["loop_lag_seconds_sum"] == pytest.approx(5.0)  # scale 1000: ms
    assert summary[ERRORS] == pytest.approx(2 / 20)
    assert [m.key for m in lesson(pair)] == [
        "queries",
        "db_connections_opened",
        "cache_hits",
        "loop_lag_seconds_sum",
        ERRORS,
    ]


def test_per_request_skips_trials_that_do_not_report_it(synth: Any) -> None:
    spec = _spec("request")
    trials = [
        synth.trial(1, 0, "lazy", [1000] * 10, counters={"rows": 50.0}),
        synth.trial(1, 1, "lazy", [1000] * 10),  # /metrics not scraped
    ]
    assert counter_value(trials, "rows", spec) == 5.0
    assert counter_value(trials[1:], "rows", spec) is None


def test_per_named_counters_needs_a_positive_denominator(synth: Any) -> None:
    spec = _spec(["hits", "misses"], scale=100.0)
    hit = synth.trial(1, 0, "a", [1000], counters={"hits": 3.0, "misses": 1.0})
    assert counter_value([hit], "hits", spec) == pytest.approx(75.0)
    idle = synth.trial(1, 0, "a", [1000], counters={"hits": 0.0, "misses": 0.0})
    assert counter_value([idle], "hits", spec) is None
    lacking = synth.trial(1, 0, "a", [1000], counters={"hits": 3.0})  # no misses reported
    assert counter_value([lacking], "hits", spec) is None


def test_per_trial_is_the_mean_or_the_max_of_a_peak(synth: Any) -> None:
    trials = [
        synth.trial(1, r, "a", [1000], counters={"rss": value})
        for r, value in enumerate((100.0, 300.0))
    ]
    assert counter_value(trials, "rss", _spec("trial")) == 200.0
    assert counter_value(trials, "rss", _spec("trial", kind="peak", scale=0.5)) == 150.0


def test_declared_counters_and_lesson_decide_the_panels(synth: Any) -> None:
    trials = [synth.trial(1, 0, "lazy", [1000] * 4, counters={"rows": 8.0, "bytes": 0.0})]
    pair = synth.pair(trials)
    pair["counters"] = {
        "rows": _spec("request", label="rows read"),
        "bytes": _spec("request", label="bytes"),
        "other": _spec("request", label="other"),
    }
    pair["lesson"] = ["bytes", "rows"]
    summary = mechanism_summary(pair, trials)
    assert summary["mechanism"] == {"rows": 2.0, "bytes": 0.0, "other": None}
    # bytes are all zero and no request failed: only rows is worth a panel.
    assert [m.key for m in shown(pair, [summary])] == ["rows"]
    assert shown(pair, [summary])[0].axis_label == "rows read / request"


@pytest.mark.parametrize(
    ("per", "unit", "label", "amount", "suffix"),
    [
        # A count: its unit is the label's noun.
        ("request", "statements", "SQL statements / request", "3 SQL statements per request", ""),
        # A measure per request: its unit is shown.
        ("request", "ms", "time waiting / request (ms)", "time waiting: 3 ms per request", " ms"),
        # A share of requests is a ratio, not an amount per request.
        ("request", "%", "time waiting (%)", "time waiting 3%", "%"),
        ("trial", "MiB", "time waiting (MiB)", "time waiting 3 MiB", " MiB"),
    ],
)
def test_a_measure_per_request_keeps_its_unit(
    per: str, unit: str, label: str, amount: str, suffix: str
) -> None:
    pair = {"counters": {"c": {**_spec(per, label="x"), "unit": unit}}}
    noun = "SQL statements" if unit == "statements" else "time waiting"
    pair["counters"]["c"]["label"] = noun
    (mechanism,) = [m for m in lesson(pair | {"lesson": ["c"]}) if m.key == "c"]
    assert mechanism.axis_label == label
    assert mechanism.amount(3.0, "3") == amount
    assert mechanism.suffix == suffix
