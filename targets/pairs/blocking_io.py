"""A blocking call inside `async def` vs awaiting it: K milliseconds of waiting per request.

The commonest FastAPI bug. A handler declared `async def` runs on the event loop; a synchronous
call inside it (a sync database driver, `requests.get`, `time.sleep`) blocks that loop for as long
as it waits, so every other request on the server (even a trivial one) waits too, although the
process is idle. The fix awaits an async driver: the loop serves others while the database works.
The middle road is a plain `def` handler: FastAPI runs it in its thread pool (AnyIO's, 40 threads
by default), so the loop stays free, but each waiting request holds a thread, and the 41st
concurrent one queues for a thread, not for the database. (Here the pair's SYNC_POOL_SIZE sync
connections bound it first; the profiles' 4 users reach neither bound.)

The blocking call here is a synchronous database driver against a slow query: psycopg's sync
connection running `SELECT ... FROM pg_sleep(K ms)`, against asyncpg awaiting the same statement.
So the wait is a real round trip to the real PostgreSQL, as in code at work, not a `time.sleep`
(which would model a sync HTTP call just as well, without the database). The cheap
/blocking_io/ping is the bystander: load it alongside and watch its latency; the server's loop
lag (a generic counter) and the pair's own count of blocking calls made on the event loop's
thread show the mechanism.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from psycopg_pool import ConnectionPool

from ..deps import AppMetrics, Pool
from ..metrics import Metrics
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Shows

# Bounded: the wait is user input, and one request must not hold a connection (or, in the bad
# variant, the whole server) for long.
MAX_MS = 1000
# The pair's own sync connections: enough for the load's users and a bystander at once (the
# bad variant uses one at a time, the thread pool one per thread), far below max_connections.
SYNC_POOL_SIZE = 8
APPLICATION_NAME = "pairbench_blocking_io"  # visible in pg_stat_activity

# One statement for both drivers; only the placeholder syntax differs ($1 vs %s).
_SLEEP_SQL = "SELECT {param}::int AS ms FROM pg_sleep({param}::int / 1000.0)"
ASYNCPG_SQL = _SLEEP_SQL.format(param="$1")
PSYCOPG_SQL = _SLEEP_SQL.format(param="%(ms)s")


class Reply(Body):
    """Every variant's body: the milliseconds the database waited, as it returned them."""

    ms: int


class Status(Body):
    status: str


pair = Pair(
    name="blocking_io",
    title="A blocking call inside async def vs awaited",
    summary="K ms of database wait per request: a sync driver in async def, def in threads, "
    "or an async driver.",
    knob=Knob("ms", "database wait per request", "ms"),
    counters=["loop_lag_seconds_sum", "loop_blocking_calls"],
    reference=None,  # no published figure for this setup is known
    body=Reply,
)
LOOP_BLOCKING_CALLS = pair.counter(
    "loop_blocking_calls",
    "Synchronous database calls made on the event loop's thread",
    label="blocking calls on the event loop",
    unit="calls",
)

WaitMs = Annotated[int, Query(ge=1, le=MAX_MS, description="database wait per request (ms)")]


def _sync_pool(request: Request) -> ConnectionPool:
    pool: ConnectionPool = request.app.state.blocking_io_pair
    return pool


SyncPool = Annotated[ConnectionPool, Depends(_sync_pool)]


@pair.variant("bad")
async def sync_driver(ms: WaitMs, sync_pool: SyncPool, metrics: AppMetrics) -> dict[str, int]:
    """psycopg's sync driver inside async def: the event loop waits out every query."""
    return {"ms": _query_sync(sync_pool, ms, metrics)}


@pair.variant("middle")
def thread_pool(ms: WaitMs, sync_pool: SyncPool, metrics: AppMetrics) -> dict[str, int]:
    """A plain def handler: FastAPI runs it in its 40-thread pool, the loop stays free."""
    return {"ms": _query_sync(sync_pool, ms, metrics)}


@pair.variant("good")
async def async_driver(ms: WaitMs, pool: Pool) -> dict[str, int]:
    """asyncpg awaited: the event loop serves other requests while the query runs."""
    return {"ms": await pool.fetchval(ASYNCPG_SQL, ms)}


@pair.route("ping", body=Status)
async def ping() -> dict[str, str]:
    """A trivial endpoint on the same event loop: its latency shows what the waits cost others."""
    return {"status": "ok"}


def _query_sync(sync_pool: ConnectionPool, ms: int, metrics: Metrics) -> int:
    """The slow query on a sync connection: this thread waits until PostgreSQL answers."""
    if _on_event_loop():
        metrics.inc(LOOP_BLOCKING_CALLS)  # the mechanism: nothing else runs until it returns
    with sync_pool.connection() as conn:
        row = conn.execute(PSYCOPG_SQL, {"ms": ms}).fetchone()
    assert row is not None  # one row: pg_sleep in FROM returns one
    waited: int = row[0]
    return waited


def _on_event_loop() -> bool:
    """Whether the calling thread is running an event loop (FastAPI's thread pool is not)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextlib.asynccontextmanager
async def _opened_sync_pool(dsn: str) -> AsyncIterator[ConnectionPool]:
    """The pair's sync pool, opened in full (so no connect is timed) and closed at the end."""
    sync_pool = ConnectionPool(
        dsn,
        min_size=SYNC_POOL_SIZE,
        max_size=SYNC_POOL_SIZE,
        # autocommit, as asyncpg behaves by default: otherwise psycopg wraps the SELECT in
        # BEGIN ... COMMIT, two round trips the async variant does not make.
        kwargs={"autocommit": True, "application_name": APPLICATION_NAME},
        open=False,
    )
    try:
        # In a thread: opening waits for SYNC_POOL_SIZE connects, which must not block the
        # loop that the other pairs' lifespans share.
        await asyncio.to_thread(sync_pool.open, wait=True)
        yield sync_pool
    finally:
        await asyncio.to_thread(sync_pool.close)


@pair.lifespan
@contextlib.asynccontextmanager
async def sync_connections(app: FastAPI) -> AsyncIterator[None]:
    """Open the pair's psycopg sync pool at startup, close it at shutdown."""
    async with _opened_sync_pool(app.state.settings.pg_dsn) as sync_pool:
        app.state.blocking_io_pair = sync_pool
        yield


# The micro benchmark (docs/architecture.md, "The micro suite"): one query on the sync driver
# against asyncpg, no HTTP. One call alone: what each driver costs, not what blocking costs
# others under load (the bystander's latency shows that).
MICRO_MS = 1


@pair.micro_setup
def _micro_sync_pool(on: MicroServers) -> contextlib.AbstractAsyncContextManager[ConnectionPool]:
    return _opened_sync_pool(on.dsn)


@pair.micro("sync_driver", knob=MICRO_MS)
async def _micro_sync_driver(on: MicroServers) -> Any:
    return await sync_driver(MICRO_MS, on.resource, on.metrics)


@pair.micro("async_driver", knob=MICRO_MS)
async def _micro_async_driver(on: MicroServers) -> Any:
    return await async_driver(MICRO_MS, on.pool)


# The workshop exercise (docs/architecture.md, "Exercises"): await the query instead of blocking.
pair.exercise(
    reference="async_driver",
    task="""Return the same body as `sync_driver` ({"ms": ms}, as the database returns it from
    ASYNCPG_SQL, which waits `ms` milliseconds in pg_sleep), but keep the event loop free while
    the database works, so the cheap /blocking_io/ping beside it is not kept waiting: await the
    query on the app's asyncpg `pool` instead of calling a synchronous driver.""",
    knob=50,
    min_ratio=5.0,
    shows=[
        Shows(
            "loop_blocking_calls",
            "a synchronous database call still runs on the event loop's thread",
        ),
        Shows(
            "loop_lag_seconds_sum",
            "the event loop is still blocked while the query runs",
            at_most=20,
        ),
    ],
)
