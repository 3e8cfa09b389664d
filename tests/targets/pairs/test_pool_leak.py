"""pool_leak: every variant serves the same accounts and fails the same requests; only the leaking
one loses a connection per failure, and after its pool's size in failures serves nothing but
acquire timeouts, until the reset gives it a full pool again."""

from __future__ import annotations

import httpx
import pytest

from pairbench.harness import metricsclient
from pairbench.targets.pairs.pool_leak import (
    EXHAUSTED_STATUS,
    FAILED_STATUS,
    LEAK_POOL_SIZE,
    MAX_FAIL_PCT,
    pair,
)
from pairbench.targets.registry import document

COUNTERS = document()["counters"]
VARIANTS = list(pair.variants)
GOOD = [v for v in VARIANTS if pair.variants[v].role == "good"]


def _reset(target: httpx.Client) -> None:
    assert pair.reset_path is not None
    assert target.post(pair.reset_path).status_code == 200


def _state(target: httpx.Client) -> dict[str, dict[str, int]]:
    assert pair.state_path is not None
    state: dict[str, dict[str, int]] = target.get(pair.state_path).json()
    return state


def _send(
    target: httpx.Client, variant: str, fail_pct: int, requests: int
) -> tuple[list[httpx.Response], dict[str, float]]:
    before = target.get("/metrics").text
    replies = [target.get(f"{pair.path(variant)}?fail_pct={fail_pct}") for _ in range(requests)]
    return replies, metricsclient.delta(before, target.get("/metrics").text, COUNTERS)


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role) for v in pair.variants.values()] == [
        ("leaky", "bad"),
        ("try_finally", "good"),
        ("async_with", "good"),
    ]


def test_the_reset_gives_every_variant_a_full_pool(target: httpx.Client) -> None:
    _reset(target)
    full = {"size": LEAK_POOL_SIZE, "checked_out": 0, "requests": 0}
    assert _state(target) == dict.fromkeys(VARIANTS, full)


def test_same_accounts_and_the_same_failures_from_every_variant(target: httpx.Client) -> None:
    # 10%: requests 10 and 20 fail; fewer failures than the pool has connections, so even the
    # leaking variant still serves every other request.
    _reset(target)
    statuses, bodies = {}, {}
    for variant in VARIANTS:
        replies, _ = _send(target, variant, 10, 20)
        statuses[variant] = [r.status_code for r in replies]
        bodies[variant] = [r.json() for r in replies if r.status_code == 200]
    want = [FAILED_STATUS if i in (10, 20) else 200 for i in range(1, 21)]
    assert statuses == dict.fromkeys(VARIANTS, want)
    assert all(b == bodies["leaky"] for b in bodies.values())
    assert [b["id"] for b in bodies["leaky"]] == [i for i in range(1, 21) if i not in (10, 20)]
    _reset(target)


def test_a_failure_leaks_a_connection_only_from_the_leaking_variant(target: httpx.Client) -> None:
    _reset(target)
    for variant in VARIANTS:
        replies, counters = _send(target, variant, MAX_FAIL_PCT, 1)  # this one fails
        assert replies[0].status_code == FAILED_STATUS, variant
        assert counters["pool_acquires"] == 1, variant
        # The pool's own reset hook ran for the released connection only.
        assert counters["pool_releases"] == (0 if variant == "leaky" else 1), variant
    state = _state(target)
    assert state["leaky"]["checked_out"] == 1
    assert all(state[v]["checked_out"] == 0 for v in GOOD), state
    _reset(target)


def test_after_pool_size_failures_the_leaking_variant_serves_nothing(target: httpx.Client) -> None:
    # 20%: every fifth request fails; 4 failures (20 requests) drain a pool of 4, and from
    # then on every request times out waiting for a connection, failing or not.
    _reset(target)
    served = {}
    for variant in VARIANTS:
        replies, counters = _send(target, variant, 20, 40)
        served[variant] = [r.status_code for r in replies]
        timeouts = served[variant].count(EXHAUSTED_STATUS)
        assert counters["acquire_timeouts"] == timeouts, variant
    drained = LEAK_POOL_SIZE * 5
    assert served["leaky"][drained:] == [EXHAUSTED_STATUS] * (40 - drained)
    assert served["leaky"][:drained].count(200) == drained - LEAK_POOL_SIZE
    for variant in GOOD:
        # The good variants fail exactly the requests told to fail, and keep serving.
        assert served[variant].count(FAILED_STATUS) == 8, variant
        assert served[variant].count(200) == 32, variant
    assert _state(target)["leaky"]["checked_out"] == LEAK_POOL_SIZE
    # The reset closes the leaked connections and the next trial starts with a full pool.
    _reset(target)
    assert _state(target)["leaky"] == {"size": LEAK_POOL_SIZE, "checked_out": 0, "requests": 0}
    assert target.get(f"{pair.path('leaky')}?fail_pct=20").status_code == 200


def test_without_failures_the_variants_are_alike(target: httpx.Client) -> None:
    _reset(target)
    for variant in VARIANTS:
        replies, counters = _send(target, variant, 0, 2 * LEAK_POOL_SIZE)
        assert all(r.status_code == 200 for r in replies), variant
        assert counters["queries"] == 2 * LEAK_POOL_SIZE, variant
        assert counters["pool_acquires"] == counters["pool_releases"] == 2 * LEAK_POOL_SIZE
    assert all(s["checked_out"] == 0 for s in _state(target).values())


@pytest.mark.parametrize("query", ["fail_pct=-1", f"fail_pct={MAX_FAIL_PCT + 1}", "fail_pct=x"])
def test_out_of_bounds_is_422_and_acquires_nothing(target: httpx.Client, query: str) -> None:
    _reset(target)
    for variant in VARIANTS:
        before = target.get("/metrics").text
        response = target.get(f"{pair.path(variant)}?{query}")
        counters = metricsclient.delta(before, target.get("/metrics").text, COUNTERS)
        assert response.status_code == 422, (variant, query)
        assert counters["pool_acquires"] == 0 and counters["queries"] == 0, (variant, query)
