"""background_jobs: every variant sends the same email once (the same row, checked in the
database); only the awaited one waits for it; a repeated Idempotency-Key is one job; the queue's
jobs survive a killed worker and run after it restarts, while a killed web process loses its
BackgroundTasks. Real PostgreSQL, Valkey, downstream service, worker process and uvicorn."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from pairbench.harness import downstream, metricsclient, server, services
from pairbench.targets.pairs.background_jobs import (
    ACCEPTED_KEY,
    MAX_MS,
    QUEUE_NAME,
    SENT_TABLE,
    job_id,
    jobs_redis_url,
    pair,
)

from ...conftest import JobWorker
from .counting import COUNTERS

VARIANTS = ["awaited", "background_task", "queued"]
STATUS = {"awaited": 200, "background_task": 202, "queued": 202}
SLOW_MS = 1500  # long enough to kill a process while its jobs are under way
KEYS = range(9_000_001, 9_000_007)  # keys of these tests alone


def _reset(target: httpx.Client) -> httpx.Response:
    assert pair.reset_path is not None
    return target.post(pair.reset_path)


def _state(target: httpx.Client) -> dict[str, int]:
    assert pair.state_path is not None
    response = target.get(pair.state_path)
    assert response.status_code == 200, response.text
    state: dict[str, int] = response.json()
    return state


def _send(target: httpx.Client, variant: str, key: int, ms: int) -> httpx.Response:
    return target.post(
        f"/background_jobs/{variant}", params={"ms": ms}, headers={"Idempotency-Key": str(key)}
    )


@pytest.fixture
def jobs(target: httpx.Client, job_worker: JobWorker) -> Iterator[httpx.Client]:
    """The session's target with the worker running, and the pair reset before and after."""
    assert _reset(target).status_code == 200
    yield target
    assert _reset(target).status_code == 200, "a test left a job that never ran or ran twice"


def test_same_row_and_only_the_bad_variant_waits(jobs: httpx.Client) -> None:
    states, took = {}, {}
    for variant in VARIANTS:
        assert _reset(jobs).status_code == 200
        before = jobs.get("/metrics").text
        started = time.perf_counter()
        response = _send(jobs, variant, 7, 300)
        took[variant] = time.perf_counter() - started
        counters = metricsclient.delta(before, jobs.get("/metrics").text, COUNTERS)
        assert response.status_code == STATUS[variant], response.text
        assert response.json()["job_id"] == job_id(7)
        assert counters["effects_awaited"] == (1 if variant == "awaited" else 0), counters
        states[variant] = _state(jobs)  # waits until the job ran
        assert states[variant]["sent"] == 1
        assert states[variant]["never_ran"] == 0 and states[variant]["ran_twice"] == 0
    assert states["awaited"] == states["background_task"] == states["queued"]
    assert took["awaited"] >= 0.3
    assert took["queued"] < 0.3 and took["background_task"] < 0.3


def test_a_repeated_key_is_one_job(jobs: httpx.Client) -> None:
    for variant in VARIANTS:
        assert _reset(jobs).status_code == 200
        for _ in range(3):
            assert _send(jobs, variant, 11, 50).status_code == STATUS[variant]
        state = _state(jobs)
        assert (state["sent"], state["ran_twice"], state["never_ran"]) == (1, 0, 0), variant


@pytest.mark.parametrize(
    ("ms", "key"), [(-1, 1), (MAX_MS + 1, 1), ("x", 1), (50, 0), (50, "a"), (50, None)]
)
def test_bad_input_is_refused(target: httpx.Client, ms: object, key: object) -> None:
    headers = {} if key is None else {"Idempotency-Key": str(key)}
    for variant in VARIANTS:
        response = target.post(f"/background_jobs/{variant}?ms={ms}", headers=headers)
        assert response.status_code == 422, response.text


def _active(redis_url: str) -> int:
    async def count() -> int:
        client = jobs_redis_url(redis_url)
        try:
            return int(await client.llen(f"saq:{QUEUE_NAME}:active"))
        finally:
            await client.aclose(close_connection_pool=True)

    return asyncio.run(count())


def test_the_queue_keeps_jobs_a_killed_worker_was_running(
    jobs: httpx.Client, job_worker: JobWorker, servers: services.Endpoints
) -> None:
    for key in KEYS:
        assert _send(jobs, "queued", key, SLOW_MS).status_code == 202
    deadline = time.monotonic() + 5
    while _active(servers.redis_url) < len(KEYS):
        assert time.monotonic() < deadline, "the worker never took the jobs"
        time.sleep(0.02)
    job_worker.running.popen.send_signal(signal.SIGKILL)  # mid-job: no shutdown runs
    job_worker.running.popen.wait(5)
    with psycopg.connect(servers.pg_dsn) as conn:
        assert conn.execute(f"SELECT count(*) FROM {SENT_TABLE} WHERE NOT seeded").fetchone() == (
            0,
        )
    job_worker.restart()
    state = _state(jobs)
    assert (state["sent"], state["never_ran"], state["ran_twice"]) == (len(KEYS), 0, 0)


def test_a_killed_web_process_loses_its_background_tasks(
    jobs: httpx.Client,
    servers: services.Endpoints,
    downstream_service: downstream.RunningDownstream,
    tmp_path: Path,
) -> None:
    own = server.start(
        servers.pg_dsn,
        servers.redis_url,
        tmp_path / "server.log",
        extra_env=downstream_service.env(),
    )
    try:
        with httpx.Client(base_url=own.url, timeout=10) as client:
            for key in KEYS:
                assert _send(client, "background_task", key, SLOW_MS).status_code == 202
        own.popen.send_signal(signal.SIGKILL)  # mid-flight: its tasks die with it
        own.popen.wait(5)
    finally:
        own.stop()
    state = _state(jobs)  # the session's server: nothing of those is pending there
    assert state["never_ran"] == len(KEYS) and state["sent"] == 0
    assert _reset(jobs).status_code == 500  # the pair refuses to forget a lost job
    # Forget them here, as an operator would after the incident, so the fixture's reset passes.
    asyncio.run(_forget(servers.redis_url))


async def _forget(redis_url: str) -> None:
    client = jobs_redis_url(redis_url)
    try:
        await client.delete(ACCEPTED_KEY)
    finally:
        await client.aclose(close_connection_pool=True)
