"""Row-by-row INSERT vs a batch: N+1 for writes.

An endpoint that stores the n lines of an order one `INSERT` at a time, each in its own
transaction (what autocommit does when nobody opens one), pays a round trip and a commit per
row, and every commit waits for the write-ahead log to reach the disk. Wrapping the same loop in
one transaction keeps the round trips but commits once; `executemany` pipelines the one prepared
statement for every row in a single implicit transaction; one multi-row statement
(`INSERT ... SELECT * FROM unnest($1::int[], ...)`) sends every row in one round trip; `COPY`
(asyncpg's `copy_records_to_table`) streams them in the binary copy format.

Every variant writes the same n lines (built from n alone, so the table's content after one
request is the same whichever variant wrote it) and returns {"inserted": n}. The pair writes,
so it is judged by the `side_effect` rule: after one request of each variant, from the same
reset, its state route (a count and a checksum of the written lines) must be the same. Reset
deletes every line that was not seeded, before every trial and every verification request.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import Query

from ..data import Size
from ..deps import AppMetrics, Pool
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference, Shows

MAX_ROWS = 10_000  # bounded: rows per request are user input, and each is built in memory
WRITTEN_ORDER = 0  # the order every request writes its lines to; seeded orders start at 1
LINES_PER_SEEDED_ORDER = 10
SKUS = 997  # a prime, so a line's sku and quantity do not repeat together
TABLE = "batch_lines"
COLUMNS = ("order_id", "line", "sku", "quantity", "price_cents", "seeded")


class Inserted(Body):
    """How many lines the request wrote."""

    inserted: int


class State(Body):
    """The written (not seeded) lines: their number and a checksum of their content."""

    written: int
    checksum: str | None
    seeded: int


pair = Pair(
    name="batch_insert",
    title="Row-by-row INSERT vs one batch",
    summary="Write n order lines: n autocommit INSERTs (a commit each) vs one batch.",
    knob=Knob("n", "rows per request", "rows"),
    sizes={
        # Lines already in the table: writes go to an index that is not empty, as in production.
        "test": {"seeded_lines": 1_000},
        "quick": {"seeded_lines": 20_000},
        "standard": {"seeded_lines": 200_000},
        "talk": {"seeded_lines": 200_000},
    },
    # The mechanism: one commit (and one WAL flush) per row for the bad variant, one per request
    # for every batch; statements per request as the driver sent them.
    counters=["commits", "queries", "db_rows"],
    equivalence="side_effect",
    body=Inserted,
    reference=Reference(
        figure="20k rows: 6.0 s, 0.79 s, 0.13 s, 0.09 s (per-row autocommit, one transaction,"
        " multi-row, COPY)",
        ratio=6.0 / 0.09,
        source="issue 13's check with psql outside pairbench",
        knob=20_000,
    ),
)
COMMITS = pair.counter(
    "commits",
    "Transactions a request committed",
    label="commits",
    unit="commits",
)

INSERT_SQL = (
    "INSERT INTO batch_lines (order_id, line, sku, quantity, price_cents, seeded)"
    " VALUES ($1, $2, $3, $4, $5, false)"
)
# One statement for every row: each column arrives as one array, unnest zips them into rows.
UNNEST_SQL = (
    "INSERT INTO batch_lines (order_id, line, sku, quantity, price_cents, seeded)"
    " SELECT $1::integer, *, false FROM unnest($2::integer[], $3::text[], $4::integer[], $5::integer[])"
)

Rows = Annotated[int, Query(ge=1, le=MAX_ROWS, description="order lines to write")]
Line = tuple[int, int, str, int, int]  # order_id, line, sku, quantity, price_cents


def lines(n: int) -> list[Line]:
    """The n lines a request writes: the same for every variant, built from n alone."""
    return [
        (WRITTEN_ORDER, i, f"SKU-{i % SKUS:05d}", 1 + i % 9, 100 + (i * 37) % 10_000)
        for i in range(1, n + 1)
    ]


@pair.variant("bad", method="POST")
async def autocommit(pool: Pool, metrics: AppMetrics, n: Rows) -> dict[str, int]:
    """One INSERT per row, each its own transaction (n round trips, n commits)."""
    async with pool.acquire() as conn:
        for line in lines(n):
            await conn.execute(INSERT_SQL, *line)
            metrics.inc(COMMITS)  # no transaction open: every statement commits on its own
    return {"inserted": n}


@pair.variant("middle", method="POST")
async def one_transaction(pool: Pool, metrics: AppMetrics, n: Rows) -> dict[str, int]:
    """One INSERT per row inside one transaction (n round trips, 1 commit)."""
    async with pool.acquire() as conn, conn.transaction():
        for line in lines(n):
            await conn.execute(INSERT_SQL, *line)
    metrics.inc(COMMITS)
    return {"inserted": n}


@pair.variant("good", method="POST")
async def executemany(pool: Pool, metrics: AppMetrics, n: Rows) -> dict[str, int]:
    """One prepared INSERT, every row pipelined by executemany (1 commit)."""
    async with pool.acquire() as conn:
        # asyncpg sends the executions without waiting for each reply, in one implicit
        # transaction (atomic since asyncpg 0.22).
        await conn.executemany(INSERT_SQL, lines(n))
    metrics.inc(COMMITS)
    return {"inserted": n}


@pair.variant("good", method="POST")
async def unnest(pool: Pool, metrics: AppMetrics, n: Rows) -> dict[str, int]:
    """One multi-row INSERT ... SELECT FROM unnest($1::int[], ...) (1 round trip)."""
    rows = lines(n)
    async with pool.acquire() as conn:
        await conn.execute(
            UNNEST_SQL,
            WRITTEN_ORDER,
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
        )
    metrics.inc(COMMITS)
    return {"inserted": n}


@pair.variant("good", method="POST")
async def copy(pool: Pool, metrics: AppMetrics, n: Rows) -> dict[str, int]:
    """COPY FROM STDIN (copy_records_to_table): the rows streamed in binary, 1 commit."""
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            TABLE, records=[(*line, False) for line in lines(n)], columns=COLUMNS
        )
    metrics.inc(COMMITS)
    return {"inserted": n}


@pair.reset
async def reset(pool: Pool) -> dict[str, int]:
    """Back to the seeded lines: every written line deleted, so no trial sees another's rows."""
    async with pool.acquire() as conn:
        status = await conn.execute("DELETE FROM batch_lines WHERE NOT seeded")
    return {"deleted": int(status.split()[-1])}


STATE_SQL = """
SELECT count(*) FILTER (WHERE NOT seeded) AS written,
       md5(string_agg(concat_ws(':', order_id, line, sku, quantity, price_cents), ','
                      ORDER BY line, sku, quantity, price_cents) FILTER (WHERE NOT seeded))
           AS checksum,
       count(*) FILTER (WHERE seeded) AS seeded
FROM batch_lines
"""


@pair.state
async def state(pool: Pool) -> dict[str, Any]:
    """The written lines as a count and an order-free checksum, beside the seeded count."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(STATE_SQL)
    assert row is not None  # an aggregate without GROUP BY returns one row
    return {"written": row["written"], "checksum": row["checksum"], "seeded": row["seeded"]}


# Seed data: orders 1.. with LINES_PER_SEEDED_ORDER lines each, marked seeded so reset keeps them.
# The id is an identity column started far above the seeded ids, so written lines never collide.
@pair.table(
    TABLE,
    """CREATE TABLE batch_lines (
        id          bigint  GENERATED BY DEFAULT AS IDENTITY (START WITH 1000000000) PRIMARY KEY,
        order_id    integer NOT NULL,
        line        integer NOT NULL,
        sku         text    NOT NULL,
        quantity    integer NOT NULL,
        price_cents integer NOT NULL,
        seeded      boolean NOT NULL
    )""",
)
def _batch_lines(
    size: Size, rng: random.Random
) -> Iterator[tuple[int, int, int, str, int, int, bool]]:
    for line_id in range(1, size["seeded_lines"] + 1):
        order, line = divmod(line_id - 1, LINES_PER_SEEDED_ORDER)
        yield (
            line_id,
            order + 1,
            line + 1,
            f"SKU-{rng.randrange(SKUS):05d}",
            rng.randint(1, 9),
            rng.randint(100, 10_000),
            True,
        )


# The micro benchmark (docs/architecture.md, "The micro suite"): the row-by-row autocommit loop
# against COPY, on asyncpg directly; the lines written are deleted when the suite is done.
MICRO_ROWS = 100


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_cleanup(on: MicroServers) -> AsyncIterator[None]:
    """Leave the table as seeded: the cores write thousands of lines between them."""
    try:
        yield
    finally:
        await reset(on.pool)


@pair.micro("autocommit", knob=MICRO_ROWS)
async def _micro_autocommit(on: MicroServers) -> Any:
    return await autocommit(on.pool, on.metrics, n=MICRO_ROWS)


@pair.micro("copy", knob=MICRO_ROWS)
async def _micro_copy(on: MicroServers) -> Any:
    return await copy(on.pool, on.metrics, n=MICRO_ROWS)


pair.exercise(
    reference="executemany",
    task="""Write the same n lines to `batch_lines` as `autocommit` does (lines(n)) and return
    {"inserted": n}, but with one commit per request, not one per row, and one statement
    sent to PostgreSQL (or none: COPY is not a statement), not n. Count each commit you make
    with metrics.inc(COMMITS).""",
    knob=50,
    min_ratio=3.0,
    shows=[
        Shows("commits", "every row still commits on its own: write all n rows in one commit"),
        Shows(
            "queries",
            "one statement per row is still sent: hand the driver every row at once",
        ),
    ],
)
