"""The load agent across processes: a locust master with two local workers, merged exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from pairbench.harness import procs, server
from pairbench.harness.load import LoadAgent


@pytest.fixture(scope="module")
def two_workers(
    target_server: server.TargetServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadAgent]:
    running = LoadAgent(
        target_server.url, Path(tmp_path_factory.mktemp("mp")) / "agent.log", processes=2
    )
    try:
        yield running
    finally:
        running.close()


def test_merged_histogram_counts_every_workers_requests(two_workers: LoadAgent) -> None:
    reply = two_workers.trial("/probe/sleep?ms=2", 6, 0.2, 1.0)
    per_process = reply["processes"]
    assert len(per_process) == 2 and all(p["requests"] > 0 for p in per_process)
    assert reply["requests"] == sum(p["requests"] for p in per_process)
    assert (
        HdrHistogram.decode(reply["histogram"]).get_total_count()
        == reply["requests"] - reply["errors"]
    )
    assert reply["generator_cpu_percent"] == max(p["cpu_percent"] for p in per_process)


def test_open_model_rate_is_shared_by_the_workers(two_workers: LoadAgent) -> None:
    reply = two_workers.trial("/probe/sleep?ms=5", 8, 0.2, 1.5, rate=120)
    books = reply["open"]
    assert books["dropped"] == 0
    assert abs(books["achieved_rate"] - 120) / 120 < 0.05
    assert HdrHistogram.decode(reply["service_histogram"]).get_total_count() > 0


def test_closing_the_agent_ends_its_workers(
    target_server: server.TargetServer, tmp_path: Path
) -> None:
    import psutil

    agent = LoadAgent(target_server.url, tmp_path / "agent.log", processes=2)
    children = psutil.Process(agent.popen.pid).children(recursive=True)
    assert len(children) >= 2
    agent.close()
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive and not procs.pid_alive(agent.popen.pid)
