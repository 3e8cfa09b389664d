"""The report's tables: measurements (with TTFB when recorded), mechanism from metadata."""

from __future__ import annotations

import copy
from typing import Any

from hdrh.histogram import HdrHistogram

from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.io.histograms import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS
from pairbench.results.report import tables

TTFB_US = 400  # every request's first byte arrives after 0.4 ms


def _ttfb_histogram(count: int) -> str:
    histogram = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    histogram.record_value(TTFB_US, count)
    return str(histogram.encode().decode("ascii"))


def test_measurements_without_ttfb_keep_their_columns(demo_run: dict) -> None:
    pair = demo_run["pairs"]["demo"]
    table = tables.measurements(pair, analyse_pair(pair))
    assert table.headers == [
        "knob",
        "variant",
        "p50 (ms)",
        "p99 (ms)",
        "req/s",
        "requests",
        "rounds",
    ]


def test_ttfb_p50_is_shown_beside_the_full_p50(demo_run: dict) -> None:
    pair = copy.deepcopy(demo_run["pairs"]["demo"])
    for trial in pair["trials"]:
        trial["ttfb_histogram"] = _ttfb_histogram(trial["requests"])
    analysis = analyse_pair(pair)
    assert analysis["per_variant"]["100"]["join"]["ttfb_p50_ms"] == TTFB_US / 1000
    table = tables.measurements(pair, analysis)
    assert table.headers[2:4] == ["p50 (ms)", "TTFB p50 (ms)"]
    assert {row[3] for row in table.rows} == {"0.400"}


def test_replies_per_status_when_the_trials_counted_them(demo_run: dict) -> None:
    pair = copy.deepcopy(demo_run["pairs"]["demo"])
    assert tables.statuses(pair, analyse_pair(pair)) is None  # none counted: no table
    for trial in pair["trials"]:
        # A limited client: one reply in four a 429 under join, every reply a 200 under lazy.
        limited = trial["requests"] // 4 if trial["variant"] == "join" else 0
        trial["statuses"] = {"200": trial["requests"] - limited, "429": limited}
        if not limited:
            del trial["statuses"]["429"]
    analysis = analyse_pair(pair)
    cell = analysis["per_variant"]["100"]["join"]
    assert set(cell["statuses"]) == {"200", "429"}
    table = tables.statuses(pair, analysis)
    assert table is not None
    assert table.headers == ["knob", "variant", "200 (%)", "429 (%)", "replies"]
    join = next(r for r in table.rows if r[:2] == ("n=100", "join"))
    lazy = next(r for r in table.rows if r[:2] == ("n=100", "lazy"))
    total = sum(cell["statuses"].values())
    assert join[3] == f"{100 * cell['statuses']['429'] / total:.1f}" and lazy[3] == "0.0"


def test_mechanism_table_columns_follow_the_lesson(demo_run: dict) -> None:
    pair: dict[str, Any] = demo_run["pairs"]["demo"]
    table = tables.mechanism(pair, analyse_pair(pair))
    assert table is not None
    # Connections opened are all zero and no request failed: no column for them.
    assert table.headers == [
        "knob",
        "variant",
        "SQL statements / request",
        "event-loop lag, mean (ms)",
    ]
    lazy_at_100 = next(r for r in table.rows if r[:2] == ("n=100", "lazy"))
    assert lazy_at_100[2] == "101"
