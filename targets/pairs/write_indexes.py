"""What every index costs on writes.

An index speeds the reads that use it and taxes every write: each row inserted goes into the
table and into every index, each a B-tree descent, a page change and its WAL record (and after a
checkpoint the first change to a page logs the whole page). A table given "an index for every
column someone might filter on" pays that tax on every insert, whether or not those reads ever
come.

Both variants insert the same orders, `rows` of them in one statement, into tables that differ
only in their indexes: the lean one has its primary key, the indexed ones the primary key and
`indexes` secondary indexes (1, 2, 4 or 8, on the columns of SECONDARY in order). The WAL bytes
each insert wrote are read in the same statement (pg_current_wal_insert_lsn before and after),
so the counter costs no round trip; with one user, as the scenario runs it, no other backend's
WAL falls between the two readings.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import HTTPException, Query

from ..data import Size, title
from ..deps import AppMetrics, Pool
from ..metrics import Metrics
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference

INDEX_COUNTS = (1, 2, 4, 8)  # the knob: secondary indexes on the indexed variant's table
DEFAULT_ROWS = 500  # orders per request: enough that the indexes, not HTTP, carry the cost
MAX_ROWS = 1_000  # bounded: rows per request is user input
# Seeded rows keep ids below FIRST_NEW_ID; inserted rows take ids from it (the identity's
# start), so a reset deletes exactly the inserted rows and restarts the identity there.
FIRST_NEW_ID = 1_000_000_001


class Inserted(Body):
    """How many orders the request inserted."""

    inserted: int


class WrittenState(Body):
    """The orders inserted since the last reset, over all of the pair's tables."""

    rows: int
    checksum: str | None


pair = Pair(
    name="write_indexes",
    title="Indexes on writes",
    summary="Insert orders into a table with its primary key only vs one with N more indexes.",
    knob=Knob("indexes", "secondary indexes on the table", "indexes"),
    sizes={
        # Orders seeded in each table before any insert, so no index starts empty.
        "test": {"seeded_rows": 1_000},
        "quick": {"seeded_rows": 20_000},
        "standard": {"seeded_rows": 100_000},
        "talk": {"seeded_rows": 100_000},
    },
    counters=["wal_bytes", "queries"],
    equivalence="side_effect",
    body=Inserted,
    reference=Reference(
        figure="2.1 to 2.3x slower inserts with 8 secondary indexes",
        ratio=2.2,
        source="issue 13's check with psql outside pairbench",
        knob=8,
    ),
)
WAL_BYTES = pair.counter(
    "wal_bytes",
    "Bytes of write-ahead log an insert statement wrote",
    label="WAL written",
    unit="bytes",
)

# The columns a secondary index goes on, in the order the knob adds them.
SECONDARY = (
    "customer_id",
    "sku",
    "email",
    "created_at",
    "total_cents",
    "ref",
    "city",
    "phone",
)
# Every column of the inserted rows is a function of the row's id, so the same ids give the
# same rows in every table (the side_effect check), and no two requests insert equal keys (a
# B-tree deduplicates equal keys, which would make the indexes look cheaper than they are).
INSERT_SQL = """WITH before AS MATERIALIZED (SELECT pg_current_wal_insert_lsn() AS lsn),
new AS (
    INSERT INTO {table} (id, customer_id, sku, email, created_at, total_cents, ref, city, phone)
    SELECT n,
           (n * 7919) % 100000,
           'SKU-' || md5('sku' || n),
           'customer' || (n * 104729) % 1000003 || '@example.com',
           timestamptz '2025-01-01 00:00:00+00' + ((n * 37) % 31536000) * interval '1 second',
           (n * 7907) % 100000,
           md5('ref' || n)::uuid,
           md5('city' || n),
           lpad(((n * 48271) % 1000000007)::text, 10, '0')
    FROM (SELECT nextval(pg_get_serial_sequence('{table}', 'id')) AS n
          FROM before, generate_series(1, $1)) AS ids
    RETURNING 1
)
SELECT count(*)::int AS inserted,
       (pg_current_wal_insert_lsn() - (SELECT lsn FROM before))::bigint AS wal_bytes
FROM new"""

Indexes = Annotated[
    int, Query(ge=1, le=max(INDEX_COUNTS), description="secondary indexes: 1, 2, 4 or 8")
]
Rows = Annotated[int, Query(ge=1, le=MAX_ROWS, description="orders to insert")]
NO_TABLE = {404: "no table with that many secondary indexes"}


@pair.variant("bad", method="POST", responses=NO_TABLE)
async def indexed(
    pool: Pool, metrics: AppMetrics, indexes: Indexes, rows: Rows = DEFAULT_ROWS
) -> dict[str, int]:
    """Primary key and N secondary indexes: every row goes into N+1 B-trees."""
    return await _insert(pool, metrics, table_for(indexes), rows)


@pair.variant("good", method="POST", responses=NO_TABLE)
async def lean(
    pool: Pool, metrics: AppMetrics, indexes: Indexes, rows: Rows = DEFAULT_ROWS
) -> dict[str, int]:
    """Primary key only: the indexes the reads need, and no more (here, none)."""
    table_for(indexes)  # the same request is refused the same way
    return await _insert(pool, metrics, LEAN, rows)


async def _insert(pool: asyncpg.Pool, metrics: Metrics, table: str, rows: int) -> dict[str, int]:
    # One statement, autocommit: its WAL is read in the same statement, before the commit.
    async with pool.acquire() as conn:
        row = await conn.fetchrow(INSERT_SQL.format(table=table), rows)
    assert row is not None  # an aggregate always returns a row
    metrics.inc(WAL_BYTES, row["wal_bytes"])
    return {"inserted": row["inserted"]}


def table_for(indexes: int) -> str:
    """The table with `indexes` secondary indexes; a 404 for a count no table has.

    Table names cannot be parameters: only the names declared below are ever returned.
    """
    if indexes not in INDEX_COUNTS:
        raise HTTPException(
            status_code=404,
            detail=f"no table with {indexes} secondary indexes"
            f" (tables have {', '.join(map(str, INDEX_COUNTS))})",
        )
    return INDEXED[indexes]


@pair.reset
async def reset(pool: Pool) -> dict[str, int]:
    """Back to the seeded orders: delete the inserted ones, restart every identity."""
    deleted = 0
    async with pool.acquire() as conn, conn.transaction():
        # Locked first: an insert still in flight from the last trial commits before the
        # DELETE looks, or its rows would survive it and collide with the restarted ids.
        await conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
        for table in TABLES:
            status = await conn.execute(f"DELETE FROM {table} WHERE id >= $1", FIRST_NEW_ID)
            deleted += int(status.split()[-1])
            await conn.execute(f"ALTER TABLE {table} ALTER COLUMN id RESTART WITH {FIRST_NEW_ID}")
    return {"deleted": deleted}


@pair.state
async def state(pool: Pool) -> dict[str, Any]:
    """The inserted orders of every table as a count and a checksum (ids included)."""
    union = " UNION ALL ".join(f"SELECT t::text AS line, id FROM {table} AS t" for table in TABLES)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"SELECT count(*) AS rows, md5(string_agg(line, ',' ORDER BY id, line)) AS checksum"
            f" FROM ({union}) AS inserted WHERE id >= $1",
            FIRST_NEW_ID,
        )
    assert row is not None
    return {"rows": row["rows"], "checksum": row["checksum"]}


# The tables: the same columns and seeded rows; the lean one has its primary key only.
LEAN = "write_indexes_lean"
INDEXED = {n: f"write_indexes_{n}" for n in INDEX_COUNTS}
TABLES = [LEAN, *INDEXED.values()]
ORDERS_DDL = f"""CREATE TABLE {{table}} (
    id          bigint      GENERATED BY DEFAULT AS IDENTITY (START WITH {FIRST_NEW_ID}) PRIMARY KEY,
    customer_id integer     NOT NULL,
    sku         text        NOT NULL,
    email       text        NOT NULL,
    created_at  timestamptz NOT NULL,
    total_cents integer     NOT NULL,
    ref         uuid        NOT NULL,
    city        text        NOT NULL,
    phone       text        NOT NULL
)"""
DATA_SEED = 13
START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_S = 365 * 24 * 3600


def _indexes(table: str, count: int) -> str:
    return ";\n".join(
        f"CREATE INDEX {table}_{column}_idx ON {table} ({column})" for column in SECONDARY[:count]
    )


def _seeded(size: Size) -> Iterator[tuple[Any, ...]]:
    # Every table gets the same rows: a stream of the pair's own, not the table's.
    rng = random.Random(DATA_SEED)
    for order_id in range(1, size["seeded_rows"] + 1):
        yield (
            order_id,
            rng.randrange(100_000),
            f"SKU-{rng.getrandbits(128):032x}",
            f"customer{rng.randrange(1_000_003)}@example.com",
            START + timedelta(seconds=rng.randrange(YEAR_S)),
            rng.randrange(100_000),
            f"{rng.getrandbits(128):032x}",
            title(rng),
            f"{rng.randrange(10**10):010d}",
        )


@pair.table(LEAN, ORDERS_DDL.format(table=LEAN))
def _lean(size: Size, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    return _seeded(size)


def _declare(count: int) -> None:
    table = INDEXED[count]

    @pair.table(table, ORDERS_DDL.format(table=table), indexes=_indexes(table, count))
    def _indexed(size: Size, rng: random.Random) -> Iterator[tuple[Any, ...]]:
        return _seeded(size)


for _count in INDEX_COUNTS:
    _declare(_count)


# The micro benchmark (docs/architecture.md, "The micro suite"): the insert statement into the
# table with 8 secondary indexes against the lean one, on asyncpg directly.
MICRO_INDEXES = 8


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_reset(on: MicroServers) -> AsyncIterator[None]:
    """The cores insert for good (the suite does not reset between calls): start from the
    seeded rows, and leave them as they were found."""
    await reset(on.pool)
    try:
        yield
    finally:
        await reset(on.pool)


@pair.micro("indexed", knob=MICRO_INDEXES)
async def _micro_indexed(on: MicroServers) -> Any:
    return await indexed(on.pool, on.metrics, indexes=MICRO_INDEXES)


@pair.micro("lean", knob=MICRO_INDEXES)
async def _micro_lean(on: MicroServers) -> Any:
    return await lean(on.pool, on.metrics, indexes=MICRO_INDEXES)


# No workshop exercise (docs/architecture.md, "Exercises"): the fix is the schema (drop the
# indexes no read uses), not code a participant writes in the handler.
pair.no_exercise(
    "the fix is the schema, not the handler: drop the indexes no query uses (its page and the"
    " workshop notebook teach it)"
)
