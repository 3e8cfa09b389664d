"""The downstream service for real: TLS from its own CA, /work's delay and bounds, the concurrency
limit (queue and reject), hangs freed by a caller that gives up or by /release, and /stats
counting every accepted connection exactly once, and none that only read /stats."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pairbench.errors import InfrastructureError
from pairbench.harness import downstream, procs
from pairbench.harness.downstream import DownstreamSettings, RunningDownstream
from pairbench.harness.downstream_app import (
    BUSY_STATUS,
    CONFIGURE_WAIT_S,
    MAX_WORK_MS,
    REJECT_STATUS,
)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("downstream-state"))


@pytest.fixture(scope="module")
def service(state: Path) -> Iterator[RunningDownstream]:
    """Two slots, so a test reaches the limit with three calls."""
    running = downstream.start(
        state, state / "queue.log", DownstreamSettings(concurrency=2, hang_seconds=5.0)
    )
    try:
        yield running
    finally:
        running.stop()


def _stats(service: RunningDownstream) -> dict[str, int]:
    with service.client(5) as client:
        stats: dict[str, int] = client.get("/stats").json()
    return stats


def test_tls_is_verified_against_the_run_s_own_ca(service: RunningDownstream) -> None:
    assert service.url.startswith("https://127.0.0.1:")
    with service.client(5) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
    # The system's trust store does not know the CA made at start: verification fails.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(service.url + "/healthz", verify=ssl.create_default_context())


def test_work_answers_after_its_delay(service: RunningDownstream) -> None:
    with service.client(5) as client:
        client.get("/healthz")  # the connection is open: what follows is the delay alone
        started = time.perf_counter()
        response = client.get("/work", params={"ms": 150, "id": 7})
        took = time.perf_counter() - started
    assert response.json() == {"id": 7, "ms": 150}
    assert took >= 0.15


@pytest.mark.parametrize("query", [f"ms={MAX_WORK_MS + 1}", "ms=-1", "ms=abc", "id=-3", "hang=2"])
def test_bad_input_is_one_line_and_400(service: RunningDownstream, query: str) -> None:
    with service.client(5) as client:
        response = client.get(f"/work?{query}")
    assert response.status_code == 400
    name = query.split("=")[0]
    assert response.json()["detail"].startswith(f"{name}=")


def test_connections_are_counted_exactly(service: RunningDownstream) -> None:
    before = _stats(service)
    for _ in range(3):  # three clients, two calls each: three connections, six calls
        with service.client(5) as client:
            client.get("/work")
            client.get("/work")
    for _ in range(4):  # readers of /stats alone are not counted
        _stats(service)
    after = _stats(service)
    assert after["connections"] - before["connections"] == 3
    assert after["calls"] - before["calls"] == 6


async def _concurrently(service: RunningDownstream, n: int, ms: int) -> list[int]:
    async with httpx.AsyncClient(
        base_url=service.url, verify=downstream.trust(service.ca), timeout=10
    ) as client:
        replies = await asyncio.gather(*(client.get("/work", params={"ms": ms}) for _ in range(n)))
    return [r.status_code for r in replies]


def test_calls_beyond_the_limit_queue(service: RunningDownstream) -> None:
    with service.client(5) as client:
        client.get("/stats", params={"reset": 1})
    started = time.perf_counter()
    statuses = asyncio.run(_concurrently(service, 4, 200))
    took = time.perf_counter() - started
    assert statuses == [200] * 4
    assert took >= 0.4  # two slots, four calls of 200 ms: two waves
    stats = _stats(service)
    assert stats["peak_in_flight"] == 2
    assert stats["peak_waiting"] == 2
    assert stats["peak_open"] == 4  # served and queued at once: what the callers had open
    assert stats["in_flight"] == stats["waiting"] == 0


def test_calls_beyond_the_limit_are_rejected_when_set(state: Path) -> None:
    settings = DownstreamSettings(concurrency=1, over_limit="reject")
    rejecting = downstream.start(state, state / "reject.log", settings)
    try:
        statuses = asyncio.run(_concurrently(rejecting, 3, 300))
        assert sorted(statuses) == [200, REJECT_STATUS, REJECT_STATUS]
        stats = _stats(rejecting)
        assert stats["rejected"] == 2
        assert stats["concurrency"] == 1 and stats["over_limit"] == "reject"
    finally:
        rejecting.stop()
    assert not procs.pid_alive(rejecting.pid)
    assert not rejecting.folder.exists()


def test_a_hang_ends_when_the_caller_gives_up(service: RunningDownstream) -> None:
    before = _stats(service)
    with service.client(0.3) as client, pytest.raises(httpx.ReadTimeout):
        client.get("/work", params={"hang": 1})
    deadline = time.monotonic() + 2
    while _stats(service)["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    after = _stats(service)
    assert after["in_flight"] == 0  # well before the service's own 5 s
    assert after["hung"] - before["hung"] == 1
    assert after["calls"] == before["calls"]  # nobody to answer


def test_release_answers_every_hanging_call(service: RunningDownstream) -> None:
    async def hang_then_release() -> tuple[list[int], int, float]:
        async with httpx.AsyncClient(
            base_url=service.url, verify=downstream.trust(service.ca), timeout=10
        ) as client:
            started = time.perf_counter()
            hanging = [
                asyncio.ensure_future(client.get("/work", params={"hang": 1})) for _ in range(2)
            ]
            while (await client.get("/stats")).json()["in_flight"] < 2:
                await asyncio.sleep(0.02)
            released = (await client.get("/release")).json()["released"]
            replies = await asyncio.gather(*hanging)
            return [r.status_code for r in replies], released, time.perf_counter() - started

    statuses, released, took = asyncio.run(hang_then_release())
    assert statuses == [200, 200]
    assert released == 2
    assert took < 2.0  # the service's own limit is 5 s


def test_peaks_restart_on_reset_and_counts_only_grow(service: RunningDownstream) -> None:
    asyncio.run(_concurrently(service, 2, 100))
    with service.client(5) as client:
        read = client.get("/stats", params={"reset": 1}).json()
        again = client.get("/stats").json()
    assert read["peak_in_flight"] == 2
    assert again["peak_in_flight"] == 0
    assert again["calls"] == read["calls"]


def test_provide_starts_only_when_needed(state: Path) -> None:
    with downstream.provide(False, state, state / "none.log") as none:
        assert none is None
    with downstream.provide(True, state, state / "some.log") as some:
        assert some is not None and some.alive()
        assert set(some.env()) == {downstream.URL_ENV, downstream.CA_ENV}
        assert some.describe()["concurrency"] == downstream.DEFAULT_CONCURRENCY
    assert not procs.pid_alive(some.pid)
    assert not some.folder.exists()


def test_configure_changes_the_running_service_s_limit(state: Path) -> None:
    """A scenario's [downstream] table: applied to the running service (same URL and CA, which
    the target was started with), for the calls that follow."""
    running = downstream.start(state, state / "configure.log")
    try:
        url = running.url
        settings = running.configure(1, "reject")
        assert settings == DownstreamSettings(concurrency=1, over_limit="reject")
        assert running.url == url
        statuses = asyncio.run(_concurrently(running, 3, 300))
        assert sorted(statuses) == [200, REJECT_STATUS, REJECT_STATUS]
        stats = _stats(running)
        assert (stats["concurrency"], stats["over_limit"], stats["rejected"]) == (1, "reject", 2)
        running.configure(3, "queue")  # and back: three at once, none refused
        assert asyncio.run(_concurrently(running, 3, 100)) == [200] * 3
        after = _stats(running)
        assert after["rejected"] == 2
        assert after["concurrency"] == 3 and after["over_limit"] == "queue"
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("concurrency=0", "concurrency=0 is not between 1 and"),
        ("concurrency=x", "concurrency='x' is not a whole number"),
        ("over_limit=drop", "over_limit='drop' is not one of queue, reject"),
    ],
)
def test_configure_refuses_bad_input(service: RunningDownstream, query: str, detail: str) -> None:
    with service.client(5) as client:
        response = client.post(f"/configure?{query}")
        assert client.get("/configure").status_code == 405  # it changes state: POST only
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)
    assert _stats(service)["concurrency"] == 2  # unchanged


def test_configure_waits_for_calls_to_end_and_is_busy_past_its_wait(state: Path) -> None:
    running = downstream.start(state, state / "busy.log", DownstreamSettings(concurrency=2))

    async def configure_while(ms: int) -> tuple[int, float]:
        async with httpx.AsyncClient(
            base_url=running.url, verify=downstream.trust(running.ca), timeout=20
        ) as client:
            call = asyncio.ensure_future(client.get("/work", params={"ms": ms}))
            while (await client.get("/stats")).json()["in_flight"] < 1:
                await asyncio.sleep(0.01)
            started = time.perf_counter()
            response = await client.post("/configure", params={"concurrency": 5})
            took = time.perf_counter() - started
            await call
            return response.status_code, took

    try:
        status, took = asyncio.run(configure_while(300))
        assert status == 200
        assert took >= 0.2  # it waited for the call in flight
        assert _stats(running)["concurrency"] == 5
        # A call longer than its wait (CONFIGURE_WAIT_S): busy, one line, nothing changed.
        with pytest.raises(InfrastructureError, match=rf"POST /configure -> {BUSY_STATUS}: .*busy"):
            asyncio.run(_busy_configure(running))
        assert _stats(running)["concurrency"] == 5
    finally:
        running.stop()


async def _busy_configure(running: RunningDownstream) -> None:
    async with httpx.AsyncClient(
        base_url=running.url, verify=downstream.trust(running.ca), timeout=20
    ) as client:
        call = asyncio.ensure_future(
            client.get("/work", params={"ms": int(CONFIGURE_WAIT_S * 1000) + 500})
        )
        while (await client.get("/stats")).json()["in_flight"] < 1:
            await asyncio.sleep(0.01)
        try:
            await asyncio.to_thread(running.configure, 1, "queue")
        finally:
            await call
