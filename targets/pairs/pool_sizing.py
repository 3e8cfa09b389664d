"""A pool of 100 connections vs a pool sized to the machine's cores, under rising concurrency.

A pool sized "for the peak", 100 connections, means no request ever waits for a connection:
under load every request in flight has a backend of its own, and PostgreSQL runs them all at
once on the machine's few cores. A pool of a few connections per core (CONNECTIONS_PER_CORE x
cores, the top of the usual "2 to 4 x cores"; HikariCP's rule is cores x 2 + spindles) keeps the
requests beyond it waiting in the pool's queue inside the app, in arrival order, where waiting
costs nothing, and the database works only on what it can finish. Four per core rather than
two: the app, the load generator and PostgreSQL share the cores here, and a connection sits
idle in the database during each of the transaction's round trips through the app.

Why this query. Backends that only burn CPU side by side would show little: the scheduler
shares the cores, and the work to do is the same whether 8 or 64 backends take turns at it.
What makes many connections worse is contention inside the database: work that holds something
the others need. So each request is a short transaction shaped like a transfer's first half:
lock the account's row (`SELECT ... FOR UPDATE`), add up the account's ledger while the lock is
held (20,000 entries in the run profiles, 1 to 2 ms of PostgreSQL's CPU: enough that the
database, not only the app, is what the load contends for), commit. The accounts
are few and hot (ACCOUNTS, drawn uniformly: at 64 users about three requests want each one at
once), and requests for the same account queue on its row lock. With 100 connections every one
of them is inside PostgreSQL, holding a backend and a snapshot while it waits, and each lock
holder shares the cores with every other holder, so each lock is held longer and the queue
behind it grows: the tail pays. With the small pool at most a few transactions are inside, a
lock's holder runs nearly alone, and the rest wait their turn in the app. The transaction only
locks and reads, it writes nothing: every variant returns the same body and the pair needs no
reset.

Both pools are opened on first use (`GET /pool_sizing/pools`, the scenario's `[prepare]`),
not at the app's start: their connections would otherwise be held through every other pair's
run, against a max_connections sized for that run. The counters: backends busy in PostgreSQL
and backends waiting on a lock, sampled from pg_stat_activity while the pair is being requested
(mean per sample); the time a request waited for a connection, and how many requests waited.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, HTTPException, Query, Request

from ..counters import MS_PER_S, PER_TRIAL, PERCENT, per_sum_of
from ..data import Size, person
from ..metrics import Metrics
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference, ServerNeeds

BIG_POOL_SIZE = 100  # "enough for the peak": the size a pool is given when nobody measured
CONNECTIONS_PER_CORE = 4  # the small pool: 4 x cores (the module docstring says why 4)
# The cores this process may use: the embedded PostgreSQL runs on the same machine.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
# At most half the big pool: on a machine with 25 cores or more, 100 is itself "a few per core"
# and the pair compares two right-sized pools.
SMALL_POOL_SIZE = min(CONNECTIONS_PER_CORE * CORES, BIG_POOL_SIZE // 2)
MAX_ACCOUNT_ID = 2**31 - 1  # sizing_accounts.id is an integer column
# A small set of hot accounts, the same in every profile: requests for one account queue on its
# row lock. The scenario's [keys] draws from them.
ACCOUNTS = 20
POOL_OPEN_TIMEOUT_S = 60.0  # opening 100 connections, each a scram handshake, on a busy machine
APPLICATION_NAME_PREFIX = "pairbench-pool_sizing-"  # pg_stat_activity tells the pools apart
SAMPLER_APPLICATION_NAME = f"{APPLICATION_NAME_PREFIX}sampler"
SAMPLE_INTERVAL_S = 0.02  # pg_stat_activity is read 50 times a second while the pair is loaded
# The sampler reads only while the pair's variants are being requested: a request in flight, or
# one begun in the last SAMPLE_IDLE_S. Other pairs' trials never pay for it.
SAMPLE_IDLE_S = 0.5
# Both pools and the sampler, plus what the rest of the app may hold open beside them (the
# app's pool, the pool pair's psycopg pool, pool_leak's pools, introspection): the harness adds
# its own margin on top.
OTHER_CONNECTIONS = 40
MAX_CONNECTIONS = BIG_POOL_SIZE + SMALL_POOL_SIZE + 1 + OTHER_CONNECTIONS


class Balance(Body):
    """An account with the number of its ledger entries and their sum."""

    account_id: int
    owner: str
    entries: int
    balance_cents: int


class PoolSizes(Body):
    """The pools' sizes and the cores the small one was sized for."""

    big_pool: int
    small_pool: int
    cores: int


pair = Pair(
    name="pool_sizing",
    title="A pool of 100 vs a pool sized to the cores",
    summary=(
        "Short transactions that lock a hot account's row and add up its ledger: with 100"
        " connections every request in flight contends inside PostgreSQL; with a few per core"
        " the rest wait in the app."
    ),
    knob=Knob("users", "concurrent users", "users"),
    sizes={
        # The same accounts and ledger in every run profile: the knob is the load, and the
        # contention it meets (hot accounts, work per transaction) must not change with the data.
        "test": {"accounts": ACCOUNTS, "entries_per_account": 500},
        "quick": {"accounts": ACCOUNTS, "entries_per_account": 20_000},
        "standard": {"accounts": ACCOUNTS, "entries_per_account": 20_000},
        "talk": {"accounts": ACCOUNTS, "entries_per_account": 20_000},
    },
    counters=[
        "busy_backends",
        "pool_wait_seconds",
        "lock_waiting_backends",
        "pool_waits",
        "queries",
    ],
    server=ServerNeeds(max_connections=MAX_CONNECTIONS),
    body=Balance,
    reference=Reference(
        figure=(
            "Oracle's Real-World Performance demo: the pool cut from 2,048 connections to 96,"
            " nothing else changed, and response times fell from ~100 ms to ~2 ms (over 50x);"
            " the rule it gives: connections = (core_count x 2) + effective_spindle_count"
        ),
        source='HikariCP wiki, "About Pool Sizing"',
        ratio=50.0,
        # The demo's load: 9,600 threads. Ours is compared with it only at that many users,
        # which a laptop does not reach: the figure is shown beside ours, not judged against it.
        knob=9_600,
        url="https://github.com/brettwooldridge/HikariCP/wiki/About-Pool-Sizing",
    ),
)
BUSY_BACKENDS = pair.counter(
    "busy_backends",
    "Backends of the pair's pools running a statement or inside a transaction, summed over"
    " pg_stat_activity samples",
    label="backends busy in PostgreSQL (mean of samples)",
    unit="backends",
    per=per_sum_of(["backend_samples"]),
)
LOCK_WAITING_BACKENDS = pair.counter(
    "lock_waiting_backends",
    "Backends of the pair's pools waiting on a lock, summed over pg_stat_activity samples",
    label="backends waiting on a lock (mean of samples)",
    unit="backends",
    per=per_sum_of(["backend_samples"]),
)
BACKEND_SAMPLES = pair.counter(
    "backend_samples",
    "Times pg_stat_activity was sampled while the pair was requested",
    label="pg_stat_activity samples",
    unit="samples",
    per=PER_TRIAL,
)
POOL_WAIT_SECONDS = pair.counter(
    "pool_wait_seconds",
    "Time requests spent waiting to acquire a connection from their pool",
    label="time waiting for a connection",
    unit="ms",
    scale=MS_PER_S,
)
POOL_WAITS = pair.counter(
    "pool_waits",
    "Requests that found every connection of their pool in use",
    label="requests that waited for a connection",
    unit="%",
    scale=PERCENT,
)

NOT_FOUND = {404: "no account with that id"}
AccountId = Annotated[
    int, Query(alias="account", ge=1, le=MAX_ACCOUNT_ID, description="account id")
]

# The lock a transfer takes first: concurrent requests for the same account queue here.
LOCK_ACCOUNT_SQL = "SELECT id, owner FROM sizing_accounts WHERE id = $1 FOR UPDATE"
# The work done while holding it: every entry of the account's ledger, added up.
LEDGER_SQL = (
    "SELECT count(*) AS entries, coalesce(sum(amount_cents), 0)::bigint AS balance_cents"
    " FROM sizing_entries WHERE account_id = $1"
)


@pair.variant("bad", responses=NOT_FOUND)
async def big_pool(account_id: AccountId, pools: Pools) -> dict[str, Any]:
    """A pool of 100: every request in flight gets a backend, all contending in PostgreSQL."""
    async with pools.acquire(pools.big) as conn:
        return await _balance(conn, account_id)


@pair.variant("good", responses=NOT_FOUND)
async def small_pool(account_id: AccountId, pools: Pools) -> dict[str, Any]:
    """A pool of 4 x cores: the requests beyond it wait in the app, not in PostgreSQL."""
    async with pools.acquire(pools.small) as conn:
        return await _balance(conn, account_id)


async def _balance(conn: asyncpg.Connection, account_id: int) -> dict[str, Any]:
    """Lock the account, add up its ledger while holding the lock, commit: one transaction."""
    async with conn.transaction():
        account = await conn.fetchrow(LOCK_ACCOUNT_SQL, account_id)
        if account is None:
            raise HTTPException(status_code=404, detail=f"no account with id {account_id}")
        totals = await conn.fetchrow(LEDGER_SQL, account_id)
    return {
        "account_id": account["id"],
        "owner": account["owner"],
        "entries": totals["entries"],
        "balance_cents": totals["balance_cents"],
    }


@pair.route("pools", body=PoolSizes)
async def pools_route(pools: Pools) -> dict[str, int]:
    """Open both pools if they are not yet (the scenario's [prepare]); their sizes."""
    return {
        "big_pool": pools.big.get_max_size(),
        "small_pool": pools.small.get_max_size(),
        "cores": CORES,
    }


# The pools (the pair's own resources, opened on first use) and the pg_stat_activity sampler.


def application_name(pool: str) -> str:
    """The application_name a pool's connections carry (visible in pg_stat_activity)."""
    return f"{APPLICATION_NAME_PREFIX}{pool}"


POOL_SIZES = {"big_pool": BIG_POOL_SIZE, "small_pool": SMALL_POOL_SIZE}  # the variants' pools
SAMPLE_SQL = """
    SELECT count(*) FILTER (WHERE state <> 'idle')::int AS busy,
           count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS lock_waiting
    FROM pg_stat_activity WHERE application_name = ANY($1::text[])
"""


@dataclass
class SizedPools:
    """The big and the small pool, opened together on first use, and the sampler beside them."""

    dsn: str
    metrics: Metrics
    pools: dict[str, asyncpg.Pool] = field(default_factory=dict)
    last_request: float = 0.0  # time.monotonic() of the last acquire
    in_flight: int = 0  # requests between acquire and release (or waiting to acquire)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _sampler: asyncio.Task[None] | None = None

    @property
    def big(self) -> asyncpg.Pool:
        return self.pools["big_pool"]

    @property
    def small(self) -> asyncpg.Pool:
        return self.pools["small_pool"]

    async def open(self) -> None:
        """Open both pools in full (a trial never pays for growth) and start the sampler."""
        if self.pools:
            return
        async with self._lock:
            if self.pools:  # another request opened them while this one waited
                return
            opened: dict[str, asyncpg.Pool] = {}
            try:
                for name, size in POOL_SIZES.items():
                    opened[name] = await asyncio.wait_for(
                        asyncpg.create_pool(
                            self.dsn,
                            min_size=size,
                            max_size=size,
                            # Never closed for idleness: a reconnect mid-trial would be measured.
                            max_inactive_connection_lifetime=0,
                            init=self._opened,
                            server_settings={"application_name": application_name(name)},
                        ),
                        POOL_OPEN_TIMEOUT_S,
                    )
            except BaseException:
                for pool in opened.values():
                    pool.terminate()
                raise
            self._sampler = asyncio.create_task(self._sample())
            self.pools = opened

    async def close(self) -> None:
        """Stop the sampler and close both pools."""
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        for pool in self.pools.values():
            await pool.close()
        self.pools.clear()

    @contextlib.asynccontextmanager
    async def acquire(self, pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
        """pool.acquire(), timing the wait: the one thing a small pool adds to a request."""
        self.last_request = time.monotonic()
        self.in_flight += 1
        try:
            # The pool is full-size from the start: no idle connection means this request queues.
            if pool.get_idle_size() == 0:
                self.metrics.inc(POOL_WAITS)
            start = time.perf_counter()
            async with pool.acquire() as conn:
                self.metrics.inc(POOL_WAIT_SECONDS, time.perf_counter() - start)
                yield conn
        finally:
            self.in_flight -= 1

    async def _opened(self, conn: asyncpg.Connection) -> None:
        # As the app's own pool does: connects and statements counted like every pair's.
        self.metrics.connections_opened.inc()
        conn.add_query_logger(self.metrics.query_logger(conn))

    async def _sample(self) -> None:
        """Count the pools' busy and lock-waiting backends while the pair is being requested."""
        names = [application_name(name) for name in POOL_SIZES]
        conn = await asyncpg.connect(
            self.dsn, server_settings={"application_name": SAMPLER_APPLICATION_NAME}
        )
        try:
            while True:
                await asyncio.sleep(SAMPLE_INTERVAL_S)
                if not self.in_flight and time.monotonic() - self.last_request > SAMPLE_IDLE_S:
                    continue
                row = await conn.fetchrow(SAMPLE_SQL, names)
                self.metrics.inc(BACKEND_SAMPLES)
                self.metrics.inc(BUSY_BACKENDS, row["busy"])
                self.metrics.inc(LOCK_WAITING_BACKENDS, row["lock_waiting"])
        finally:
            await conn.close()


async def _sized_pools(request: Request) -> SizedPools:
    pools: SizedPools = request.app.state.pool_sizing
    await pools.open()
    return pools


Pools = Annotated[SizedPools, Depends(_sized_pools)]


@pair.lifespan
@contextlib.asynccontextmanager
async def _resources(app: FastAPI) -> AsyncIterator[None]:
    """The pools' holder: nothing is opened until the pair is first requested."""
    resources = SizedPools(app.state.settings.pg_dsn, app.state.metrics)
    app.state.pool_sizing = resources
    try:
        yield
    finally:
        await resources.close()


# Seed data: accounts, and a ledger of entries per account in account order.


@pair.table(
    "sizing_accounts",
    """CREATE TABLE sizing_accounts (
        id    integer PRIMARY KEY,
        owner text    NOT NULL
    )""",
)
def _accounts(size: Size, rng: random.Random) -> Iterator[tuple[int, str]]:
    for account_id in range(1, size["accounts"] + 1):
        yield account_id, person(rng)


@pair.table(
    "sizing_entries",
    """CREATE TABLE sizing_entries (
        id           integer PRIMARY KEY,
        account_id   integer NOT NULL REFERENCES sizing_accounts (id),
        amount_cents integer NOT NULL
    )""",
    # The ledger's sum reads one account's entries through this index, not the whole table.
    indexes="CREATE INDEX sizing_entries_account_idx ON sizing_entries (account_id)",
)
def _entries(size: Size, rng: random.Random) -> Iterator[tuple[int, int, int]]:
    entry_id = 0
    for account_id in range(1, size["accounts"] + 1):
        for _ in range(size["entries_per_account"]):
            entry_id += 1
            yield entry_id, account_id, rng.randint(-50_000, 100_000)


# The micro benchmark (docs/architecture.md, "The micro suite"). One request alone is the same
# transaction on either pool, so one call would compare a thing with itself: a core is instead
# MICRO_USERS requests' transactions at once (the expectation's concurrency), through the
# variant's own handler, with no HTTP. Its time is the time until the last one commits: the
# work the database gets done through 100 connections or through a few per core.
MICRO_USERS = 64


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_pools(on: MicroServers) -> AsyncIterator[SizedPools]:
    """Both pools, opened in full once for every call (as the scenario's [prepare] opens them)."""
    resources = SizedPools(on.dsn, on.metrics)
    await resources.open()
    try:
        yield resources
    finally:
        await resources.close()


@pair.micro("big_pool", knob=MICRO_USERS)
async def _micro_big(on: MicroServers) -> Any:
    return await asyncio.gather(
        *(big_pool(account_id=_micro_account(i), pools=on.resource) for i in range(MICRO_USERS))
    )


@pair.micro("small_pool", knob=MICRO_USERS)
async def _micro_small(on: MicroServers) -> Any:
    return await asyncio.gather(
        *(small_pool(account_id=_micro_account(i), pools=on.resource) for i in range(MICRO_USERS))
    )


def _micro_account(i: int) -> int:
    """The i-th concurrent request's account: the hot accounts in turn, about 3 requests each."""
    return i % ACCOUNTS + 1


pair.no_exercise(
    "the fix is a setting, not handler code: the pool's max_size, chosen from the cores (a"
    " handler that limits its own concurrency would teach another lesson)"
)
