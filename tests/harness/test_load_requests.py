"""Requests as data under real locust load: method, JSON body, headers carried between steps,
expected statuses, time to first byte and peak counters, checked on the server's side."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram

from pairbench.harness import catalogue, metricsclient, request, scenario, server
from pairbench.harness.load import LoadAgent

USERS = 2
WARMUP_S = 0.2
WINDOW_S = 1.0
MIB = 1 << 20
ALLOCATE_MB = 96
EDGE_SLACK = 1.1
STREAMED_ROWS = 500  # Starlette iterates a sync generator in a thread per chunk: keep it short
LOAD = """
[profiles.quick]
knob_values = [3]
users = 1
round_seconds = 1
rounds = 1
"""


@pytest.fixture(scope="module")
def agent(
    fixture_target: server.TargetServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadAgent]:
    running = LoadAgent(fixture_target.url, tmp_path_factory.mktemp("agent") / "agent.log")
    try:
        yield running
    finally:
        running.close()


def _steps(tmp_path: Path, body: str, variant: str, knob: float, method: str = "GET") -> list[Any]:
    path = tmp_path / "pair.toml"
    path.write_text(body + LOAD)
    return request.render(scenario.load_scenario(path), variant, knob, {}, method)


def _trial(
    agent: LoadAgent, target: server.TargetServer, steps: Any, ttfb: bool = False
) -> tuple[dict[str, Any], dict[str, float]]:
    before, after = metricsclient.urls(target.url)
    reply = agent.trial(
        steps, USERS, WARMUP_S, WINDOW_S, after, metrics_before_url=before, ttfb=ttfb
    )
    specs = catalogue.fetch(target.url).counters
    return reply, metricsclient.delta(reply["metrics_before"], reply["metrics_after"], specs)


ECHO = """
pair = "harness_echo"
[request]
path = "/harness_echo/{variant}"
json = { text = "ab", repeat = "{knob}" }
"""


def test_post_with_a_json_body_reaches_the_server(
    agent: LoadAgent, fixture_target: server.TargetServer, tmp_path: Path
) -> None:
    steps = _steps(tmp_path, ECHO, "join", 3, "POST")
    assert steps[0]["method"] == "POST" and steps[0]["body"] == '{"text": "ab", "repeat": 3}'
    reply, counters = _trial(agent, fixture_target, steps)
    assert reply["requests"] > 0 and reply["errors"] == 0
    # The pair counts only POSTs whose JSON body has both fields: every request locust sent.
    # The scrapes sit just outside the window (fetching them takes a few ms of load), so the
    # server counts a little more; at most one request per user straddles the opening.
    bodies = counters["harness_echo_bodies"]
    assert reply["requests"] - USERS <= bodies <= reply["requests"] * EDGE_SLACK + USERS
    assert "ttfb_histogram" not in reply  # opt-in


def test_ttfb_histogram_is_recorded_beside_full_latency(
    agent: LoadAgent, fixture_target: server.TargetServer, tmp_path: Path
) -> None:
    lines = 'pair = "harness_lines"\nrequest = "/harness_lines/{variant}?n={knob}"\n'
    steps = _steps(tmp_path, lines, "streamed", STREAMED_ROWS)
    reply, _ = _trial(agent, fixture_target, steps, ttfb=True)
    full = HdrHistogram.decode(reply["histogram"])
    first_byte = HdrHistogram.decode(reply["ttfb_histogram"])
    assert reply["errors"] == 0 and full.get_total_count() == reply["requests"] > 0
    # Requests whose first byte came just before the window opened have no TTFB in it.
    assert abs(first_byte.get_total_count() - full.get_total_count()) <= USERS
    assert first_byte.get_value_at_percentile(50) < full.get_value_at_percentile(50)


REVALIDATE = """
pair = "harness_etag"

[[request.steps]]
path = "/harness_etag/{variant}?n={knob}"
once = true
measure = false

[[request.steps]]
path = "/harness_etag/{variant}?n={knob}"
carry = { "If-None-Match" = "ETag" }
status = %d
"""


def test_a_revalidating_client_carries_the_etag(
    agent: LoadAgent, fixture_target: server.TargetServer, tmp_path: Path
) -> None:
    steps = _steps(tmp_path, REVALIDATE % 304, "versioned", 100)
    reply, counters = _trial(agent, fixture_target, steps)
    assert reply["requests"] > 0 and reply["errors"] == 0
    assert counters["response_bytes"] < reply["requests"]  # 304s: no bodies sent
    # The same sequence expecting a 200 counts every 304 as an error: statuses are checked.
    wrong = _steps(tmp_path, REVALIDATE % 200, "versioned", 100)
    reply, _ = _trial(agent, fixture_target, wrong)
    assert reply["requests"] > 0 and reply["errors"] == reply["requests"]


# /probe/sleep answers 422 to a negative ms (a real 4xx, which locust's client fails by itself).
STATUSES = """
pair = "harness_statuses"
[request]
path = "/probe/sleep?ms={knob}&variant={variant}"
status = %s
"""


def test_a_listed_status_is_a_success_and_any_other_an_error(
    agent: LoadAgent, fixture_target: server.TargetServer, tmp_path: Path
) -> None:
    rejected = _steps(tmp_path, STATUSES % "[200, 422]", "v", -1)
    reply, _ = _trial(agent, fixture_target, rejected)
    assert reply["requests"] > 0 and reply["errors"] == 0
    # Every accepted 4xx is in the latency histogram, like a 200, and counted by its status.
    assert HdrHistogram.decode(reply["histogram"]).get_total_count() == reply["requests"]
    assert reply["statuses"] == {"422": reply["requests"]}
    answered = _steps(tmp_path, STATUSES % "[200, 422]", "v", 0)
    reply, _ = _trial(agent, fixture_target, answered)
    assert reply["requests"] > 0 and reply["errors"] == 0
    # The same 422s against a step that accepts only 200 (or another list) are all errors.
    assert reply["statuses"] == {"200": reply["requests"]}
    for status in ("200", "[200, 429]"):
        reply, _ = _trial(agent, fixture_target, _steps(tmp_path, STATUSES % status, "v", -1))
        assert reply["requests"] > 0 and reply["errors"] == reply["requests"]
    # A step accepting one status is not counted per status: run.json stays as it was.
    one, _ = _trial(agent, fixture_target, _steps(tmp_path, STATUSES % "200", "v", 0))
    assert one["errors"] == 0 and "statuses" not in one


PACED_RATE = 40.0  # requests per second: well below what back to back reaches on /probe/sleep
PACE_SLACK = 0.2


def test_a_paced_bystander_keeps_its_rate(agent: LoadAgent) -> None:
    path = "/probe/sleep?ms=1"
    paced = {"path": path, "users": 1, "rate": PACED_RATE}
    reply = agent.trial(path, USERS, WARMUP_S, WINDOW_S, bystander=paced)
    sent = reply["bystander"]["requests"]
    assert reply["bystander"]["errors"] == 0
    assert abs(sent - PACED_RATE * WINDOW_S) <= PACED_RATE * WINDOW_S * PACE_SLACK + 1
    # The same bystander unpaced sends back to back: many more in the same window.
    free = agent.trial(path, USERS, WARMUP_S, WINDOW_S, bystander={"path": path, "users": 1})
    assert free["bystander"]["requests"] > 2 * sent


def test_peak_counter_is_the_window_peak_not_a_difference(
    agent: LoadAgent, fixture_target: server.TargetServer
) -> None:
    busy, counters = _trial(agent, fixture_target, f"/probe/allocate?mb={ALLOCATE_MB}")
    assert busy["requests"] > 0
    quiet, after = _trial(agent, fixture_target, "/probe/sleep?ms=1")
    assert quiet["requests"] > 0
    # The before-scrape reset the peak: the quiet window does not remember the allocations.
    assert counters["peak_rss"] - after["peak_rss"] >= ALLOCATE_MB * MIB / 2
    assert after["peak_rss"] > 0


def test_work_given_to_meanwhile_runs_before_the_window_and_load_covers_it(
    agent: LoadAgent, fixture_target: server.TargetServer
) -> None:
    """The run saves run.json while the next trial warms up: that work ends before the
    window opens, and the reply's load time spans the warm-up and the window."""
    done: list[float] = []
    reply = agent.trial(
        "/healthz", USERS, WARMUP_S, WINDOW_S, meanwhile=lambda: done.append(time.time())
    )
    assert len(done) == 1 and done[0] < reply["started_at"]
    assert reply["load_s"] >= WARMUP_S + reply["elapsed_s"]
