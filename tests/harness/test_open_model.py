"""The open model: arrivals at a fixed rate, latency from the planned send time (wrk2's correction).

These check mechanism with wide margins (a 1 s stall against a 50 ms budget), not speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hdrh.histogram import HdrHistogram

from pairbench.harness import server
from pairbench.harness.load import LoadAgent
from pairbench.harness.recorder import KeySampler, OpenSchedule

DELAY_MS = 50.0
STALL_MS = 1000.0


@pytest.fixture(scope="module")
def agent(
    target_server: server.TargetServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadAgent]:
    running = LoadAgent(target_server.url, Path(tmp_path_factory.mktemp("agent")) / "agent.log")
    try:
        yield running
    finally:
        running.close()


def _p(encoded: str, percentile: float) -> float:
    return HdrHistogram.decode(encoded).get_value_at_percentile(percentile) / 1000.0


def _arm_stall_after(url: str, delay_s: float) -> None:
    """In `delay_s`, from another thread: the next /probe/stall freezes the loop for STALL_MS."""

    def arm() -> None:
        time.sleep(delay_s)
        httpx.get(f"{url}/probe/stall/arm?ms={STALL_MS:g}", timeout=5)

    threading.Thread(target=arm, daemon=True).start()


def test_known_delay_is_measured_within_ten_percent(agent: LoadAgent) -> None:
    reply = agent.trial(f"/probe/sleep?ms={DELAY_MS:g}", 10, 0.3, 2.0, rate=100)
    open_books = reply["open"]
    assert reply["errors"] == 0 and open_books["dropped"] == 0
    assert abs(open_books["achieved_rate"] - 100) / 100 < 0.05
    assert abs(_p(reply["histogram"], 50) - DELAY_MS) / DELAY_MS < 0.10
    assert abs(_p(reply["service_histogram"], 50) - DELAY_MS) / DELAY_MS < 0.10


def test_a_stall_shows_in_corrected_latency_and_hides_in_service_time(
    agent: LoadAgent, target_server: server.TargetServer
) -> None:
    _arm_stall_after(target_server.url, 1.0)
    reply = agent.trial("/probe/stall", 4, 0.2, 3.0, rate=200)
    corrected, service = _p(reply["histogram"], 99), _p(reply["service_histogram"], 99)
    assert corrected > STALL_MS / 2, f"corrected p99 {corrected} ms does not show the stall"
    assert service < STALL_MS / 10, f"service p99 {service} ms: expected the stall mostly hidden"
    assert reply["open"]["late"] > 0  # requests planned during the stall went out late


def test_closed_model_hides_the_stall_in_its_p99(
    agent: LoadAgent, target_server: server.TargetServer
) -> None:
    _arm_stall_after(target_server.url, 0.5)
    reply = agent.trial("/probe/stall", 4, 0.2, 2.5)
    histogram = HdrHistogram.decode(reply["histogram"])
    assert histogram.get_max_value() / 1000 > STALL_MS / 2  # the stall happened...
    assert _p(reply["histogram"], 99) < STALL_MS / 10  # ...and a closed loop's p99 barely sees it


def test_schedule_counts_due_requests() -> None:
    schedule = OpenSchedule(rate=100.0, connections=4, t0=10.0)
    assert schedule.planned(0, 0) == 10.0 and schedule.planned(1, 0) == pytest.approx(10.01)
    assert schedule.planned(0, 1) == pytest.approx(10.04)
    assert schedule.due(10.0, 11.0) == 100
    assert schedule.due(9.0, 10.5) == 50  # nothing is planned before t0


def test_key_sampler_is_seeded_and_skewed() -> None:
    sampler = KeySampler(1000, 1.1, seed=3)
    draws = [sampler() for _ in range(5000)]
    again = KeySampler(1000, 1.1, seed=3)
    assert draws == [again() for _ in range(5000)]
    assert all(1 <= k <= 1000 for k in draws)
    assert draws.count(1) > 5 * draws.count(10) > 0  # Zipf: key 1 far more often than key 10
    uniform = KeySampler(1000, 0.0, seed=3)
    assert 300 < sum(uniform() <= 500 for _ in range(1000)) < 700


def test_closed_model_think_time_paces_each_user(agent: LoadAgent) -> None:
    # 2 users, 50 ms think time and a ~1 ms endpoint: at most 2 / 0.05 = 40 req/s.
    reply = agent.trial("/probe/sleep?ms=0", 2, 0.2, 1.5, think_s=0.05)
    assert 0 < reply["requests"] / reply["elapsed_s"] <= 40 * 1.1
