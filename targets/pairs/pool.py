"""Connection per request vs a pool: one author by id, with their book count.

The bad variants open a database connection for every request: a TCP connect, a
scram-sha-256 handshake and a fresh backend process on the server, all before the one cheap
indexed query runs. The good variants borrow a connection that a pool opened once, at startup.
Each lesson is shown on both drivers: asyncpg (`connect()` vs the app's shared pool) and psycopg
(a null pool, which has the pool API but connects per request, vs a real `AsyncConnectionPool`).
All four send the same single statement and return byte-identical JSON. The knob is the number
of concurrent users, which the harness applies as load; the endpoint itself only takes an id.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
import psycopg
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, AsyncNullConnectionPool

from ..data import COUNTRIES, Size, person
from ..deps import AppMetrics, Pool
from ..metrics import Metrics
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference, ServerNeeds, Shows

MAX_AUTHOR_ID = 2**31 - 1  # pool_authors.id is an integer column: a larger id cannot exist
# Equal sizes, opened in full at startup: a trial never pays for pool growth mid-measurement.
# 10 is also the app's shared asyncpg pool size (config.DEFAULT_POOL_SIZE), so the two good
# variants differ by driver, not by how many connections they hold.
PSYCOPG_POOL_MIN_SIZE = 10
PSYCOPG_POOL_MAX_SIZE = 10
POOL_OPEN_TIMEOUT_S = 30.0  # the lifespan fails loudly if the database is unreachable
APPLICATION_NAME_PREFIX = "pairbench-pool-"  # pg_stat_activity tells the variants apart
# The bad variants hold a backend per request in flight, beside the two pools, the harness and
# the other pairs' connections: at the profiles' highest user counts 100 would be refused.
MAX_CONNECTIONS = 400


class Author(Body):
    """One author with their book count: every variant's body."""

    id: int
    name: str
    country: str
    born: int
    book_count: int


pair = Pair(
    name="pool",
    title="Connection per request vs pool",
    summary="One indexed query per request: a new connection each time vs a pooled one.",
    knob=Knob("users", "concurrent users", "users"),
    sizes={
        "test": {"authors": 300, "books_per_author": 3},
        "quick": {"authors": 2000, "books_per_author": 4},
        "standard": {"authors": 20_000, "books_per_author": 4},
        "talk": {"authors": 20_000, "books_per_author": 4},
    },
    counters=["db_connections_opened", "queries"],
    server=ServerNeeds(max_connections=MAX_CONNECTIONS),
    body=Author,
    reference=Reference(
        figure="about 65x fewer transactions per second",
        ratio=65.0,
        source="pgbench -C (a new connection per transaction) vs persistent connections",
    ),
)

NOT_FOUND = {404: "no author with that id"}
AuthorId = Annotated[int, Query(alias="id", ge=1, le=MAX_AUTHOR_ID, description="author id")]

# One statement for both drivers; only the placeholder syntax differs ($1 vs %s).
_AUTHOR_SQL = """
    SELECT a.id, a.name, a.country, a.born, count(b.id) AS book_count
    FROM pool_authors AS a LEFT JOIN pool_books AS b ON b.author_id = a.id
    WHERE a.id = {param}
    GROUP BY a.id
"""
ASYNCPG_SQL = _AUTHOR_SQL.format(param="$1")
PSYCOPG_SQL = _AUTHOR_SQL.format(param="%s")


def application_name(variant: str) -> str:
    """The application_name a variant's connections carry (visible in pg_stat_activity)."""
    return f"{APPLICATION_NAME_PREFIX}{variant}"


def _connection_kwargs(variant: str) -> dict[str, Any]:
    # autocommit, as asyncpg behaves by default: otherwise psycopg wraps the SELECT in
    # BEGIN ... COMMIT, two extra round trips that would blur the connect-vs-pool comparison.
    return {"autocommit": True, "application_name": application_name(variant)}


@pair.variant("bad", responses=NOT_FOUND)
async def asyncpg_connect(author_id: AuthorId, dsn: Dsn, metrics: AppMetrics) -> dict[str, Any]:
    """asyncpg.connect() per request: TCP, scram handshake and a new backend every time."""
    conn = await asyncpg.connect(
        dsn, server_settings={"application_name": application_name("asyncpg_connect")}
    )
    try:
        metrics.connections_opened.inc()
        conn.add_query_logger(metrics.query_logger(conn))
        row = await conn.fetchrow(ASYNCPG_SQL, author_id)
    finally:
        # In finally: an exception in the query would otherwise leak the connection, and with
        # it a server backend, until the garbage collector happens to find it.
        await conn.close()
    return _author(row, author_id)


@pair.variant("bad", responses=NOT_FOUND)
async def psycopg_null_pool(
    author_id: AuthorId, pools: Psycopg, metrics: AppMetrics
) -> dict[str, Any]:
    """psycopg null pool: the pool API, but a new connection for every request."""
    async with pools.null.connection() as conn:
        row = await _psycopg_fetch_author(conn, author_id, metrics)
    return _author(row, author_id)


@pair.variant("good", responses=NOT_FOUND)
async def asyncpg_pool(author_id: AuthorId, pool: Pool) -> dict[str, Any]:
    """asyncpg pool from the app's lifespan: connections opened once, borrowed per request."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(ASYNCPG_SQL, author_id)
    return _author(row, author_id)


@pair.variant("good", responses=NOT_FOUND)
async def psycopg_pool(author_id: AuthorId, pools: Psycopg, metrics: AppMetrics) -> dict[str, Any]:
    """psycopg AsyncConnectionPool from the pair's lifespan: opened once, borrowed per request."""
    async with pools.pooled.connection() as conn:
        row = await _psycopg_fetch_author(conn, author_id, metrics)
    return _author(row, author_id)


@pair.route("stats")
async def stats(pool: Pool, pools: Psycopg) -> dict[str, dict[str, int]]:
    """Pool sizes and usage as each driver reports them; psycopg's include time spent waiting."""
    return {
        "asyncpg_pool": {
            "pool_min": pool.get_min_size(),
            "pool_max": pool.get_max_size(),
            "pool_size": pool.get_size(),
            "pool_available": pool.get_idle_size(),
        },
        # get_stats(), not pop_stats(): reading must not reset the counters for other readers.
        "psycopg_pool": pools.pooled.get_stats(),
        "psycopg_null_pool": pools.null.get_stats(),
    }


# The psycopg pools (the pair's own resources), and the one statement on psycopg.


@dataclass(frozen=True)
class PsycopgPools:
    """The pair's own psycopg pools, created in its lifespan."""

    null: AsyncNullConnectionPool[psycopg.AsyncConnection[Any]]
    pooled: AsyncConnectionPool[psycopg.AsyncConnection[Any]]


def _psycopg_pools(request: Request) -> PsycopgPools:
    pools: PsycopgPools = request.app.state.pool_pair
    return pools


def _dsn(request: Request) -> str:
    dsn: str = request.app.state.settings.pg_dsn
    return dsn


Psycopg = Annotated[PsycopgPools, Depends(_psycopg_pools)]
Dsn = Annotated[str, Depends(_dsn)]


@pair.lifespan
@contextlib.asynccontextmanager
async def psycopg_pools(app: FastAPI) -> AsyncIterator[None]:
    """Open both psycopg pools at startup (waiting for the real one to fill); close at shutdown."""
    metrics: Metrics = app.state.metrics
    dsn: str = app.state.settings.pg_dsn

    async def on_new_connection(conn: psycopg.AsyncConnection[Any]) -> None:
        # The pool calls this once per physical connection: the same count asyncpg's init makes.
        metrics.connections_opened.inc()

    null: AsyncNullConnectionPool[psycopg.AsyncConnection[Any]] = AsyncNullConnectionPool(
        dsn,
        kwargs=_connection_kwargs("psycopg_null_pool"),
        configure=on_new_connection,
        open=False,
        name="psycopg_null_pool",
    )
    pooled: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
        dsn,
        min_size=PSYCOPG_POOL_MIN_SIZE,
        max_size=PSYCOPG_POOL_MAX_SIZE,
        kwargs=_connection_kwargs("psycopg_pool"),
        configure=on_new_connection,
        open=False,
        name="psycopg_pool",
    )
    # wait=True: fail at startup, not at the first request, if the database is unreachable
    # (the null pool makes one test connection and closes it; the real pool fills to min_size).
    await null.open(wait=True, timeout=POOL_OPEN_TIMEOUT_S)
    try:
        await pooled.open(wait=True, timeout=POOL_OPEN_TIMEOUT_S)
        try:
            app.state.pool_pair = PsycopgPools(null, pooled)
            yield
        finally:
            await pooled.close()
    finally:
        await null.close()


def _author(row: asyncpg.Record | dict[str, Any] | None, author_id: int) -> dict[str, Any]:
    if row is None:
        raise HTTPException(status_code=404, detail=f"no author with id {author_id}")
    return {
        "id": row["id"],
        "name": row["name"],
        "country": row["country"],
        "born": row["born"],
        "book_count": row["book_count"],
    }


async def _psycopg_fetch_author(
    conn: psycopg.AsyncConnection[Any], author_id: int, metrics: Metrics
) -> dict[str, Any] | None:
    """Run the one statement on a psycopg connection, counted as asyncpg's query logger counts.

    psycopg has no per-statement hook like asyncpg's add_query_logger, so the statement is
    counted here, the one place both psycopg variants send it. A cursor subclass would count
    automatically, but it would need the app's Metrics smuggled onto each connection (psycopg's
    connect() hands unknown keyword arguments to libpq): more machinery for one statement.
    """
    start = time.perf_counter()
    try:
        async with conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(PSYCOPG_SQL, (author_id,))
            return await cursor.fetchone()
    finally:
        # Counted even when it fails, as asyncpg's logger does: the round trip happened.
        metrics.queries.labels(kind="app").inc()
        metrics.query_seconds.inc(time.perf_counter() - start)


# Seed data: the pair's own authors and books (the query needs only the books' owners).


@pair.table(
    "pool_authors",
    """CREATE TABLE pool_authors (
        id      integer PRIMARY KEY,
        name    text    NOT NULL,
        country text    NOT NULL,
        born    integer NOT NULL
    )""",
)
def _pool_authors(size: Size, rng: random.Random) -> Iterator[tuple[int, str, str, int]]:
    for author_id in range(1, size["authors"] + 1):
        yield author_id, person(rng), rng.choice(COUNTRIES), rng.randint(1900, 2000)


@pair.table(
    "pool_books",
    """CREATE TABLE pool_books (
        id        integer PRIMARY KEY,
        author_id integer NOT NULL REFERENCES pool_authors (id)
    )""",
    # The index the count uses: the one indexed query stays an index lookup at every size.
    indexes="CREATE INDEX pool_books_author_id_idx ON pool_books (author_id)",
)
def _pool_books(size: Size, rng: random.Random) -> Iterator[tuple[int, int]]:
    # 0 to twice the mean per author: some authors have none, and must count as 0.
    book_id = 0
    for author_id in range(1, size["authors"] + 1):
        for _ in range(rng.randint(0, 2 * size["books_per_author"])):
            book_id += 1
            yield book_id, author_id


# The micro benchmark (docs/architecture.md, "The micro suite"): asyncpg's connect against a
# pool acquire, no HTTP, for one author. The knob (concurrent users) is the load's, not a call's.
MICRO_AUTHOR_ID = 1


@pair.micro("asyncpg_connect", knob=None)
async def _micro_connect(on: MicroServers) -> Any:
    return await asyncpg_connect(author_id=MICRO_AUTHOR_ID, dsn=on.dsn, metrics=on.metrics)


@pair.micro("asyncpg_pool", knob=None)
async def _micro_pool(on: MicroServers) -> Any:
    return await asyncpg_pool(author_id=MICRO_AUTHOR_ID, pool=on.pool)


# The workshop exercise (docs/architecture.md, "Exercises"): borrow, do not connect.
pair.exercise(
    reference="asyncpg_pool",
    task="""Return the same author as `asyncpg_connect` (from `pool_authors`, with their
    book count from `pool_books`; 404 when there is none) without opening a database
    connection per request: borrow one from the pool the app opened at startup.""",
    knob=64,
    min_ratio=2.0,
    shows=[
        Shows(
            "db_connections_opened", "your variant still connects per request: use the app's pool"
        )
    ],
    order=20,  # the workshop's order (docs/workshop.md)
)
