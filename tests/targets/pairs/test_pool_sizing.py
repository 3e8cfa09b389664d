"""Pool sizing: both pools return the same balances; the pools' sizes bound what reaches PostgreSQL.

The mechanism is shown deterministically: the test holds an account's row lock itself, sends
more concurrent requests for that account than the small pool has connections, and counts in
pg_stat_activity who waits on the lock inside the database: every request with the big pool,
never more than the small pool's size with it (the rest wait for a connection in the app).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import psycopg
import pytest

from pairbench.harness import metricsclient, services
from pairbench.targets.pairs.pool_sizing import (
    BIG_POOL_SIZE,
    CONNECTIONS_PER_CORE,
    CORES,
    MAX_ACCOUNT_ID,
    SAMPLE_IDLE_S,
    SMALL_POOL_SIZE,
    application_name,
    pair,
)
from pairbench.targets.registry import document

from .counting import get_counting

COUNTERS = document()["counters"]
VARIANTS = ["big_pool", "small_pool"]
STATEMENTS_PER_REQUEST = 4  # BEGIN, the locking SELECT, the ledger's sum, COMMIT
# More requests at once than the small pool holds, fewer than the big one: the gap is the lesson.
BURST = 3 * SMALL_POOL_SIZE
HELD_ACCOUNT = 3
SETTLE_TIMEOUT_S = 10.0
STEADY_S = 0.3  # how long a count must hold to be the steady state, not a moment on the way
POLL_S = 0.02
LOCK_WAITERS_SQL = """
    SELECT count(*) FROM pg_stat_activity
    WHERE application_name = $1 AND wait_event_type = 'Lock'
"""
BACKENDS_SQL = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"


def _pools(target: httpx.Client) -> dict[str, int]:
    response = target.get(pair.path("pools"))  # opens both pools on first use
    assert response.status_code == 200
    sizes: dict[str, int] = response.json()
    return sizes


async def _count(dsn: str, sql: str, name: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(sql, name)
        return count
    finally:
        await conn.close()


async def _steady(read: Callable[[], Awaitable[int]], expected: int) -> list[int]:
    """Poll `read` until it shows `expected` for STEADY_S; every value seen on the way."""
    seen: list[int] = []
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    since: float | None = None
    while time.monotonic() < deadline:
        seen.append(await read())
        if seen[-1] != expected:
            since = None
        elif since is None:
            since = time.monotonic()
        elif time.monotonic() - since >= STEADY_S:
            break
        await asyncio.sleep(POLL_S)
    return seen


async def _burst_behind_a_held_lock(
    base_url: str, dsn: str, variant: str, expected_waiters: int
) -> tuple[list[httpx.Response], list[int]]:
    """BURST requests for an account whose row lock this test holds: who waits in PostgreSQL."""
    holder = await asyncpg.connect(dsn)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.fetchval(
            "SELECT id FROM sizing_accounts WHERE id = $1 FOR UPDATE", HELD_ACCOUNT
        )
        limits = httpx.Limits(max_connections=BURST)
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
            path = f"{pair.path(variant)}?account={HELD_ACCOUNT}"
            requests = asyncio.gather(*(client.get(path) for _ in range(BURST)))
            try:
                seen = await _steady(
                    lambda: _count(dsn, LOCK_WAITERS_SQL, application_name(variant)),
                    expected_waiters,
                )
            finally:
                await tx.rollback()  # the lock goes: every waiting request completes
            responses = await requests
    finally:
        await holder.close()
    return responses, seen


def test_bad_first_and_room_for_the_big_pool() -> None:
    assert list(pair.variants) == VARIANTS
    assert [v.role for v in pair.variants.values()] == ["bad", "good"]
    assert pair.counters[0] == "busy_backends"
    assert 1 <= SMALL_POOL_SIZE <= CONNECTIONS_PER_CORE * CORES
    assert SMALL_POOL_SIZE <= BIG_POOL_SIZE // 2
    assert pair.server.max_connections > BIG_POOL_SIZE + SMALL_POOL_SIZE
    assert pair.workshop is None and pair.no_workshop  # a setting to change, not a handler


def test_the_pools_open_in_full_on_first_use(
    target: httpx.Client, servers: services.Endpoints
) -> None:
    sizes = _pools(target)
    assert sizes == {"big_pool": BIG_POOL_SIZE, "small_pool": SMALL_POOL_SIZE, "cores": CORES}
    for variant, size in (("big_pool", BIG_POOL_SIZE), ("small_pool", SMALL_POOL_SIZE)):
        assert asyncio.run(_count(servers.pg_dsn, BACKENDS_SQL, application_name(variant))) == size


@pytest.mark.parametrize("account_id", [1, 7, 20])
def test_both_pools_return_the_ledger_as_the_table_sums_it(
    target: httpx.Client, servers: services.Endpoints, account_id: int
) -> None:
    bodies = {v: target.get(f"{pair.path(v)}?account={account_id}") for v in VARIANTS}
    assert all(r.status_code == 200 for r in bodies.values())
    assert bodies["big_pool"].content == bodies["small_pool"].content
    with psycopg.connect(servers.pg_dsn) as conn:
        row = conn.execute(
            "SELECT count(*), sum(amount_cents) FROM sizing_entries WHERE account_id = %s",
            (account_id,),
        ).fetchone()
        owner = conn.execute(
            "SELECT owner FROM sizing_accounts WHERE id = %s", (account_id,)
        ).fetchone()
    assert row is not None and owner is not None
    assert bodies["big_pool"].json() == {
        "account_id": account_id,
        "owner": owner[0],
        "entries": row[0],
        "balance_cents": row[1],
    }
    assert row[0] > 0


def test_an_unknown_account_is_404_from_both(target: httpx.Client) -> None:
    responses = [target.get(f"{pair.path(v)}?account={MAX_ACCOUNT_ID}") for v in VARIANTS]
    assert [r.status_code for r in responses] == [404, 404]
    assert responses[0].content == responses[1].content


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_request_alone_is_one_transaction_and_never_waits(
    target: httpx.Client, variant: str
) -> None:
    _pools(target)
    for account_id in (2, 5):
        response, counters = get_counting(target, f"{pair.path(variant)}?account={account_id}")
        assert response.status_code == 200
        assert counters["queries"] == STATEMENTS_PER_REQUEST
        assert counters["pool_waits"] == 0
        assert counters["db_connections_opened"] == 0  # both pools are full already


@pytest.mark.parametrize(
    ("variant", "waiting_in_postgres", "waiting_for_a_connection"),
    [
        ("big_pool", BURST, 0),
        ("small_pool", SMALL_POOL_SIZE, BURST - SMALL_POOL_SIZE),
    ],
)
def test_the_pool_size_bounds_what_waits_inside_postgres(
    target: httpx.Client,
    servers: services.Endpoints,
    variant: str,
    waiting_in_postgres: int,
    waiting_for_a_connection: int,
) -> None:
    _pools(target)
    before = target.get("/metrics").text
    responses, seen = asyncio.run(
        _burst_behind_a_held_lock(
            str(target.base_url), servers.pg_dsn, variant, waiting_in_postgres
        )
    )
    counters = metricsclient.delta(before, target.get("/metrics").text, COUNTERS)
    # With the big pool every request is inside PostgreSQL, queued on the row lock; with the
    # small one, never more than its connections: the rest queue in the app.
    assert seen[-1] == waiting_in_postgres, seen
    assert max(seen) == waiting_in_postgres, seen
    assert [r.status_code for r in responses] == [200] * BURST
    assert len({r.content for r in responses}) == 1
    assert counters["pool_waits"] == waiting_for_a_connection
    # The sampler saw it too: backends waiting on a lock, at most the pool's size.
    assert counters["backend_samples"] > 0
    mean_waiting = counters["lock_waiting_backends"] / counters["backend_samples"]
    assert 0 < mean_waiting <= waiting_in_postgres
    assert counters["busy_backends"] / counters["backend_samples"] <= min(BURST, BIG_POOL_SIZE)


def test_the_sampler_rests_while_the_pair_is_not_requested(target: httpx.Client) -> None:
    _pools(target)
    target.get(f"{pair.path('small_pool')}?account=1")
    time.sleep(SAMPLE_IDLE_S + 0.2)  # past the idle window
    before = target.get("/metrics").text
    time.sleep(0.3)
    counters = metricsclient.delta(before, target.get("/metrics").text, COUNTERS)
    assert counters["backend_samples"] == 0


# Huge and negative values are the contract test's (tests/test_pair_contract.py).
@pytest.mark.parametrize("query", ["account=0", f"account={MAX_ACCOUNT_ID + 1}", "account=x", ""])
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_bad_account_is_422_and_borrows_nothing(
    target: httpx.Client, variant: str, query: str
) -> None:
    _pools(target)
    response, counters = get_counting(target, f"{pair.path(variant)}?{query}")
    assert response.status_code == 422
    assert counters["queries"] == 0
    assert counters.get("pool_waits", 0) == 0
