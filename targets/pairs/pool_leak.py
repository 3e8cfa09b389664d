"""A connection not released on the error path vs one released whatever happens.

`conn = await pool.acquire()` followed, after the work, by `await pool.release(conn)` reads
well until the work raises: the exception leaves the handler before the release, and the
connection stays checked out for good. Each failing request leaks one; after the pool's
LEAK_POOL_SIZE failures there is nothing left to acquire, and from then on every request, good
input or bad, waits ACQUIRE_TIMEOUT_S for a connection that never comes back and answers 503.
`try/finally` or `async with pool.acquire()` release on every path, and the same failures cost
only themselves.

The lesson is a cliff, not a ratio: once the pool is drained the bad variant serves no request
at all, so its successful throughput is zero and "good over bad" has nothing to divide by (an
infinite ratio). What is judged is the error ratio: the fixed variants fail exactly the share
of requests they are told to fail (`fail_pct`, the knob), the leaking one fails nearly all.

Each variant has a pool of its own (LEAK_POOL_SIZE connections), so one variant's leak never
starves another; the pair's reset rebuilds all of them (the leaked connections are closed) and
restarts the failure schedule, so every trial starts from full pools. A request reads one
account; whether it fails is decided by a deterministic schedule, the same for every variant:
request i since the reset fails when floor(i * fail_pct / 100) steps up, which is exactly
fail_pct out of every 100 requests, the first failure at request ceil(100 / fail_pct).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, HTTPException, Query, Request

from ..data import Size, person
from ..deps import AppMetrics
from ..metrics import Metrics
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference, ServerNeeds, Shows

LEAK_POOL_SIZE = 4  # connections per variant: small, so a few failures drain it
# How long a request waits for a connection before it is answered 503. Short, so a drained pool
# answers quickly instead of holding the load generator's users for the default minute.
ACQUIRE_TIMEOUT_S = 0.1
MAX_FAIL_PCT = 100
FAILED_STATUS = 409  # the request's own failure, after it acquired a connection
EXHAUSTED_STATUS = 503  # no connection to be had: the pool is drained
VARIANT_NAMES = ("leaky", "try_finally", "async_with")


class Account(Body):
    id: int
    owner: str
    balance_cents: int


class PoolState(Body):
    """A variant's pool: connections open, checked out, and requests since the reset."""

    size: int
    checked_out: int
    requests: int


pair = Pair(
    name="pool_leak",
    title="Connection leaked on the error path vs released in finally",
    summary=(
        "A failure skips release(): after 4 failures the pool is drained and every request"
        " times out (successful throughput 0, good/bad infinite); released in finally, failures"
        " cost only themselves."
    ),
    knob=Knob("fail_pct", "requests failing inside the handler", "%", log_scale=False),
    sizes={
        "test": {"accounts": 100},
        "quick": {"accounts": 1_000},
        "standard": {"accounts": 10_000},
        "talk": {"accounts": 10_000},
    },
    # The mechanism: requests of the leaking variant end in acquire timeouts once its pool is
    # drained; connections acquired from and released to the variants' pools, as the pools
    # report them (their setup and reset hooks), show where they went.
    counters=["acquire_timeouts", "pool_acquires", "pool_releases", "queries"],
    # The app's pool, three pools of the pair's own, the harness: well within the default.
    server=ServerNeeds(),
    body=Account,
    reference=Reference(
        figure="the bad variant exhausts the pool; the good one recovers (no published ratio:"
        " after max_size failures the bad variant serves nothing)",
        source="pairbench's design catalogue (pool leak)",
    ),
)
ACQUIRE_TIMEOUTS = pair.counter(
    "acquire_timeouts",
    "Requests that found no free connection within the acquire timeout",
    label="acquire timeouts",
    unit="requests",
)
POOL_ACQUIRES = pair.counter(
    "pool_acquires",
    "Connections handed out by the pair's pools (their setup hook)",
    label="connections acquired",
    unit="connections",
)
POOL_RELEASES = pair.counter(
    "pool_releases",
    "Connections given back to the pair's pools (their reset hook)",
    label="connections released",
    unit="connections",
)

ACCOUNT_SQL = "SELECT id, owner, balance_cents FROM leak_accounts WHERE id = $1"

FailPct = Annotated[
    int, Query(ge=0, le=MAX_FAIL_PCT, description="percent of requests that fail after acquiring")
]


@dataclass
class _Schedule:
    """Which request since the reset fails, and which account it reads (the same per variant)."""

    accounts: int
    served: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VARIANT_NAMES, 0))

    def next(self, variant: str, fail_pct: int) -> tuple[int, bool]:
        """The account the variant's next request reads, and whether that request fails."""
        i = self.served[variant] = self.served[variant] + 1
        fails = (i * fail_pct) // 100 > ((i - 1) * fail_pct) // 100
        return (i - 1) % self.accounts + 1, fails


@dataclass
class LeakPools:
    """The pair's resources: a pool per variant, rebuilt by the reset, and the schedule."""

    dsn: str
    metrics: Metrics
    schedule: _Schedule
    pools: dict[str, asyncpg.Pool] = field(default_factory=dict)

    async def open(self) -> None:
        """A full pool for every variant: one that lost connections is closed (the leaked ones
        too) and made anew; one with all its connections idle is kept, as a new one would be."""
        for name in VARIANT_NAMES:
            pool = self.pools.pop(name, None)
            if pool is not None and pool.get_idle_size() == LEAK_POOL_SIZE:
                self.pools[name] = pool
                continue
            if pool is not None:
                pool.terminate()  # close() would wait for the leaked connections forever
            self.pools[name] = await asyncpg.create_pool(
                self.dsn,
                min_size=LEAK_POOL_SIZE,
                max_size=LEAK_POOL_SIZE,
                init=self._opened,
                setup=self._acquired,
                reset=self._released,
            )
        self.schedule.served = dict.fromkeys(VARIANT_NAMES, 0)

    async def close(self) -> None:
        """Close every pool (terminate(): close() would wait for the leaked connections)."""
        for pool in self.pools.values():
            pool.terminate()
        self.pools.clear()

    async def _opened(self, conn: asyncpg.Connection) -> None:
        # As the app's own pool does: connects and statements counted like every pair's.
        self.metrics.connections_opened.inc()
        conn.add_query_logger(self.metrics.query_logger(conn))

    async def _acquired(self, conn: asyncpg.Connection) -> None:
        self.metrics.inc(POOL_ACQUIRES)

    async def _released(self, conn: asyncpg.Connection) -> None:
        await conn.reset()  # what the pool does on release when given no reset hook
        self.metrics.inc(POOL_RELEASES)

    def state(self) -> dict[str, Any]:
        return {
            name: {
                "size": pool.get_size(),
                "checked_out": pool.get_size() - pool.get_idle_size(),
                "requests": self.schedule.served[name],
            }
            for name, pool in self.pools.items()
        }


def _resources(request: Request) -> LeakPools:
    pools: LeakPools = request.app.state.pool_leak
    return pools


async def _acquire(pool: asyncpg.Pool, metrics: Metrics) -> asyncpg.Connection:
    """A connection within ACQUIRE_TIMEOUT_S, or the 503 a drained pool gets."""
    try:
        conn: asyncpg.Connection = await pool.acquire(timeout=ACQUIRE_TIMEOUT_S)
    except TimeoutError:
        metrics.inc(ACQUIRE_TIMEOUTS)
        raise HTTPException(
            EXHAUSTED_STATUS, f"no free connection within {ACQUIRE_TIMEOUT_S} s"
        ) from None
    return conn


def _failed() -> HTTPException:
    return HTTPException(FAILED_STATUS, "the request failed after acquiring a connection")


def _account(row: asyncpg.Record | None) -> dict[str, Any]:
    assert row is not None  # every scheduled id exists: ids 1..accounts are seeded
    return {"id": row["id"], "owner": row["owner"], "balance_cents": row["balance_cents"]}


RESPONSES = {FAILED_STATUS: "the request was told to fail (fail_pct), after acquiring"}


@pair.variant("bad", responses=RESPONSES)
async def leaky(request: Request, metrics: AppMetrics, fail_pct: FailPct = 0) -> dict[str, Any]:
    """acquire() ... release(): an exception skips the release and leaks the connection."""
    resources = _resources(request)
    pool = resources.pools["leaky"]
    account_id, fails = resources.schedule.next("leaky", fail_pct)
    conn = await _acquire(pool, metrics)
    row = await conn.fetchrow(ACCOUNT_SQL, account_id)
    if fails:
        raise _failed()  # leaves before the release below: the connection is never returned
    await pool.release(conn)
    return _account(row)


@pair.variant("good", responses=RESPONSES)
async def try_finally(
    request: Request, metrics: AppMetrics, fail_pct: FailPct = 0
) -> dict[str, Any]:
    """acquire() ... finally: release(): returned on every path."""
    resources = _resources(request)
    pool = resources.pools["try_finally"]
    account_id, fails = resources.schedule.next("try_finally", fail_pct)
    conn = await _acquire(pool, metrics)
    try:
        row = await conn.fetchrow(ACCOUNT_SQL, account_id)
        if fails:
            raise _failed()
    finally:
        await pool.release(conn)  # release in finally: the exception would otherwise leak it
    return _account(row)


@pair.variant("good", responses=RESPONSES)
async def async_with(
    request: Request, metrics: AppMetrics, fail_pct: FailPct = 0
) -> dict[str, Any]:
    """async with pool.acquire(): the context manager releases on every path."""
    resources = _resources(request)
    pool = resources.pools["async_with"]
    account_id, fails = resources.schedule.next("async_with", fail_pct)
    try:
        async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            row = await conn.fetchrow(ACCOUNT_SQL, account_id)
            if fails:
                raise _failed()
    except TimeoutError:  # the same answer as _acquire's, for a drained pool
        metrics.inc(ACQUIRE_TIMEOUTS)
        raise HTTPException(
            EXHAUSTED_STATUS, f"no free connection within {ACQUIRE_TIMEOUT_S} s"
        ) from None
    return _account(row)


@pair.lifespan
@contextlib.asynccontextmanager
async def _pools(app: FastAPI) -> AsyncIterator[None]:
    """The variants' pools, opened at start and closed (leaks and all) at exit."""
    async with app.state.pool.acquire() as conn:
        exists = await conn.fetchval("SELECT to_regclass('leak_accounts') IS NOT NULL")
        accounts = await conn.fetchval("SELECT count(*) FROM leak_accounts") if exists else 0
    resources = LeakPools(app.state.settings.pg_dsn, app.state.metrics, _Schedule(accounts))
    if exists:  # a run that did not seed this pair never calls it: no pools to hold open
        await resources.open()
    app.state.pool_leak = resources
    try:
        yield
    finally:
        await resources.close()


@pair.reset
async def reset(request: Request) -> dict[str, Any]:
    """Every variant's pool rebuilt full (leaked connections closed), the schedule restarted."""
    resources = _resources(request)
    await resources.open()
    return resources.state()


@pair.state
async def state(request: Request) -> dict[str, Any]:
    """Per variant: connections in its pool, checked out now, and requests since the reset."""
    return _resources(request).state()


@pair.table(
    "leak_accounts",
    """CREATE TABLE leak_accounts (
        id            integer PRIMARY KEY,
        owner         text    NOT NULL,
        balance_cents bigint  NOT NULL
    )""",
)
def _accounts(size: Size, rng: random.Random) -> Iterator[tuple[int, str, int]]:
    for account_id in range(1, size["accounts"] + 1):
        yield account_id, person(rng), rng.randint(0, 10_000_000)


# The micro benchmark (docs/architecture.md, "The micro suite"): one successful request's core
# (acquire, read, release) on a pool of LEAK_POOL_SIZE, leaking vs finally, on asyncpg
# directly. Without failures the two do the same work: the micro ratio is about 1, which is the
# point (the cost is the cliff under failures, not the code path).
MICRO_FAIL_PCT = 0


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_pools(on: MicroServers) -> AsyncIterator[Any]:
    """The variants' pools, and a stand-in for what the handlers read of a request (the app's
    state), made once for every call."""
    async with on.pool.acquire() as conn:
        accounts = await conn.fetchval("SELECT count(*) FROM leak_accounts")
    resources = LeakPools(on.dsn, on.metrics, _Schedule(accounts))
    await resources.open()
    try:
        yield SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(pool_leak=resources)))
    finally:
        await resources.close()


@pair.micro("leaky", knob=MICRO_FAIL_PCT)
async def _micro_leaky(on: MicroServers) -> Any:
    return _read(await leaky(on.resource, on.metrics, fail_pct=MICRO_FAIL_PCT))


@pair.micro("try_finally", knob=MICRO_FAIL_PCT)
async def _micro_try_finally(on: MicroServers) -> Any:
    return _read(await try_finally(on.resource, on.metrics, fail_pct=MICRO_FAIL_PCT))


def _read(account: dict[str, Any]) -> bool:
    """The cores' shared answer: each reads the next account of its own schedule, so the ids
    differ from call to call; what every call returns alike is that an account was read."""
    return bool(account["id"])


pair.exercise(
    reference="try_finally",
    task="""Return the same account as `leaky` and fail the same requests (its 409), but let a
    failing request cost only itself: with `fail_pct` percent of requests failing, no other
    request may find the pool drained (the 503 after ACQUIRE_TIMEOUT_S). Judged: the share of
    requests that fail, leaky / yours.""",
    knob=5,
    min_ratio=5.0,
    shows=[
        Shows(
            "acquire_timeouts",
            "requests still find no free connection: a failing request keeps its connection,"
            " release it on the error path too",
            at_most=0.01,
        )
    ],
)
