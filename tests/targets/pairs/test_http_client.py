"""http_client: both variants return the same results from the real downstream service over TLS;
the client per call opens a connection per call, the shared client none; a hung call makes the
bad variant wait out the hang and the good one fail fast, freeing the service's slot."""

from __future__ import annotations

import time

import httpx
import pytest

from pairbench.harness.downstream import DEFAULT_HANG_S
from pairbench.targets.pairs.http_client import MAX_CALLS, READ_TIMEOUT_S, pair

from .counting import get_counting

VARIANTS = ["client_per_call", "shared_client"]


def _warm(target: httpx.Client) -> None:
    reset = pair.reset_path
    assert reset is not None
    assert target.post(reset).status_code == 200


@pytest.mark.parametrize("calls", [1, 7])
def test_same_results_and_connections_per_call(target: httpx.Client, calls: int) -> None:
    bodies = {}
    for variant in VARIANTS:
        _warm(target)
        response, counters = get_counting(target, f"/http_client/{variant}?calls={calls}&key=3")
        assert response.status_code == 200, response.text
        bodies[variant] = response.json()
        assert counters["downstream_calls"] == calls
        expected = calls if variant == "client_per_call" else 0
        assert counters["downstream_connections"] == expected, (variant, counters)
    assert bodies["client_per_call"] == bodies["shared_client"]
    body = bodies["shared_client"]
    assert body["timed_out"] == 0
    assert [r["id"] for r in body["results"]] == [3 * MAX_CALLS + i for i in range(calls)]


def test_a_hung_call_waits_without_a_timeout_and_fails_fast_with_one(
    target: httpx.Client,
) -> None:
    """key 2 <= hang 5: the first call hangs at the service."""
    took = {}
    bodies = {}
    for variant in VARIANTS:
        _warm(target)
        started = time.perf_counter()
        response = target.get(f"/http_client/{variant}?calls=3&key=2&hang=5")
        took[variant] = time.perf_counter() - started
        assert response.status_code == 200, response.text
        bodies[variant] = response.json()
    assert took["client_per_call"] >= DEFAULT_HANG_S
    assert took["shared_client"] < DEFAULT_HANG_S / 2
    assert took["shared_client"] >= READ_TIMEOUT_S
    assert bodies["client_per_call"]["timed_out"] == 0
    assert bodies["shared_client"]["timed_out"] == 1
    assert bodies["shared_client"]["results"][0] is None
    assert bodies["shared_client"]["results"][1:] == bodies["client_per_call"]["results"][1:]
    # The good client closed the hung connection: the service's slot is free again.
    stats = target.get("/http_client/downstream_stats").json()
    assert stats["in_flight"] == 0


def test_keys_above_hang_never_hang(target: httpx.Client) -> None:
    started = time.perf_counter()
    response = target.get("/http_client/client_per_call?calls=2&key=6&hang=5")
    assert response.status_code == 200
    assert time.perf_counter() - started < DEFAULT_HANG_S


@pytest.mark.parametrize(
    "query", ["calls=0", f"calls={MAX_CALLS + 1}", "calls=1&key=0", "calls=1&hang=51", "calls=x"]
)
def test_bad_input_is_refused(target: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        assert target.get(f"/http_client/{variant}?{query}").status_code == 422


def test_neighbour_answers(target: httpx.Client) -> None:
    response = target.get("/http_client/neighbour")
    assert response.status_code == 200
    assert response.json() == {"id": 0, "ms": 0}
