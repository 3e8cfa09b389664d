"""cold_start: every variant answers the same; a cold invocation is a new process that reports
its import and connect time, a provisioned one never starts cold; inputs are bounded; and no
function process outlives the server, whether it is stopped (SIGTERM, SIGINT) or killed."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from pairbench.harness import procs, server, services
from pairbench.targets.pairs.cold_start import MAX_INVOCATION, WARM_PROCESSES, pair

from .counting import get_counting

VARIANTS = ["cold_eager", "cold_lazy", "provisioned"]
GONE_WITHIN_S = 5.0  # a process killed mid-import finishes it, reads EOF and exits


def test_the_pair_says_it_is_a_model() -> None:
    assert list(pair.variants) == VARIANTS
    assert [v.role for v in pair.variants.values()] == ["bad", "middle", "good"]
    assert pair.counters[0] == "cold_starts"
    module_doc = (pair.variants["cold_eager"].handler.__module__, pair.summary)
    assert "model" in pair.summary and "model" in pair.title
    assert module_doc[0].endswith("cold_start")


def test_same_answer_cold_or_warm_and_the_cold_path_is_counted(target: httpx.Client) -> None:
    bodies = []
    for variant in VARIANTS:
        # Invocation 3 starts cold at 5% and above, warm below.
        cold, counted = get_counting(target, f"/cold_start/{variant}?invocation=3&cold_pct=5")
        assert cold.status_code == 200, cold.text
        bodies.append(cold.content)
        if variant == "provisioned":
            assert counted["cold_starts"] == 0
            continue
        assert counted["cold_starts"] == 1
        assert counted["cold_import_seconds"] > 0 and counted["cold_connect_seconds"] > 0
        warm, counted = get_counting(target, f"/cold_start/{variant}?invocation=3&cold_pct=2")
        assert warm.content == cold.content and counted["cold_starts"] == 0
    assert bodies == [bodies[0]] * len(VARIANTS)
    rows = httpx.Response(200, content=bodies[0]).json()["rows"]
    assert [row["n"] for row in rows] == list(range(3, 13))
    alive = target.get("/cold_start/processes").json()
    assert alive["cold"] == [] and 1 <= len(alive["warm"]) <= WARM_PROCESSES


@pytest.mark.parametrize(
    "query",
    [
        "invocation=0&cold_pct=5",
        f"invocation={MAX_INVOCATION + 1}&cold_pct=5",
        "invocation=1&cold_pct=101",
        "invocation=1&cold_pct=-1",
        "invocation=1",
    ],
)
def test_bad_input_is_a_422(target: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        assert target.get(f"/cold_start/{variant}?{query}").status_code == 422


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_no_function_process_outlives_the_server(
    servers: services.Endpoints, tmp_path: Path, sig: signal.Signals
) -> None:
    running = server.start(servers.pg_dsn, servers.redis_url, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            assert client.get("/cold_start/provisioned?invocation=1&cold_pct=0").status_code == 200
            # A cold invocation in flight when the signal comes: its process is starting.
            in_flight = threading.Thread(
                target=_quietly, args=(client, "/cold_start/cold_eager?invocation=1&cold_pct=100")
            )
            in_flight.start()
            pids = _wait_for_cold(client)
        os.kill(running.pid, sig)
        running.popen.wait(timeout=15)
        deadline = time.monotonic() + GONE_WITHIN_S
        while time.monotonic() < deadline and any(procs.pid_alive(p) for p in pids):
            time.sleep(0.05)
        assert not [p for p in pids if procs.pid_alive(p)], f"outlived the server ({sig.name})"
        in_flight.join(timeout=15)
    finally:
        running.stop()


def _wait_for_cold(client: httpx.Client) -> list[int]:
    """The warm and cold function PIDs, once a cold one is starting."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = client.get("/cold_start/processes").json()
        if alive["cold"]:
            return [*alive["warm"], *alive["cold"]]
        time.sleep(0.01)
    raise AssertionError("no cold function process started")


def _quietly(client: httpx.Client, path: str) -> None:
    """A request the server may drop on its way down: no answer is fine."""
    with contextlib.suppress(httpx.HTTPError):
        client.get(path)
