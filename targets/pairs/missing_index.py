"""The missing index, and the indexes a query cannot use.

One question, asked eight ways: "customer C's orders with status S in month M", oldest first.
Without an index on the customer, PostgreSQL reads every row of the table to find the three or
four that match (a sequential scan); a B-tree on customer_id reads about a hundred. Two traps
keep an index that exists from helping: wrapping the column in a function
(`date_trunc('month', created_at)`) hides it from the index on created_at, where the same month
as a range (`created_at >= $ AND created_at < $`) uses it; and a composite index in the wrong
order, (created_at, customer_id), reads every entry of the month to find one customer's, where
(customer_id, created_at) goes straight to them. A third: an index on a column with three values
(status) does not help a value nine rows in ten have: planned for that value, the query scans
the table as if the index were not there; planned once for any value (the generic plan a
prepared statement switches to after five runs, as asyncpg's statement cache does), it assumes a
third of the rows and reads every page through the index, slower than the scan. And the same
B-tree on customer_id does less when the table is stored in its order (CLUSTER): the customer's
hundred orders sit on one or two heap pages instead of a hundred (buffers per request, at equal
index use).

Every variant reads its own table, the same rows with one structure each (no index, status,
created_at, (created_at, customer_id), customer_id, (customer_id, created_at), and customer_id
with the rows in its order), so all exist at once and none can use another's index. The knob is
the table's rows: each table is partitioned by size (`table_rows`, one partition per size in
TABLE_ROWS up to the profile's `max_rows`), the planner prunes a query to the partition of its
size, and every structure's partition of a size holds the same orders, placed over MONTHS months
in created_at order (as orders are inserted), 100 per customer, so the answer is the same few
rows at every size and only what is read to find them grows.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Query

from ..data import Size
from ..deps import Pool
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference
from ._maintenance import vacuum

# The knob: one partition of each structure's table per size. None smaller: at 1,000 rows the planner's
# choices waver between index and bitmap scans, and every plan reads a page or two anyway.
TABLE_ROWS = (10_000, 100_000, 1_000_000)
ORDERS_PER_CUSTOMER = 100  # customers = rows / 100, so a customer's orders are the same at any size
START = datetime(2024, 1, 1, tzinfo=UTC)
MONTHS = 24  # orders span 2024 and 2025: one month is about 4% of a table
FIRST_YEAR, LAST_YEAR = START.year, START.year + MONTHS // 12 - 1
# Status shares: the low-cardinality column. Nine orders in ten are shipped.
STATUSES = ("shipped", "pending", "cancelled")
STATUS_WEIGHTS = (90, 5, 5)
MAX_CUSTOMER = max(TABLE_ROWS) // ORDERS_PER_CUSTOMER


class OrderBody(Body):
    id: int
    customer_id: int
    created_at: datetime
    status: str
    total_cents: int


pair = Pair(
    name="missing_index",
    title="Missing index vs the right B-tree",
    summary="One customer's orders in a month: a sequential scan reads the whole table.",
    knob=Knob("rows", "table rows", "rows"),
    sizes={
        # The largest partition seeded: every size of TABLE_ROWS up to it, in seven tables.
        "test": {"max_rows": 10_000},
        "quick": {"max_rows": 100_000},
        "standard": {"max_rows": 1_000_000},
        "talk": {"max_rows": 1_000_000},
    },
    # The mechanism: buffers read per request grow with the table for a scan, not for an index;
    # the plan check (scenario, [mechanism.plan]) shows which access path each variant takes.
    counters=["db_buffers", "queries"],
    body=list[OrderBody],
    reference=Reference(
        figure=(
            "55 ms vs 0.15 ms (seq scan vs B-tree); 76 ms vs 0.2 ms (function-wrapped vs range);"
            " 40 ms vs 0.07 ms (wrong vs right composite order), at 1M rows"
        ),
        ratio=55 / 0.15,
        source="issue 13's check with psql outside pairbench",
        knob=1_000_000,
    ),
)

COLUMNS = "id, customer_id, created_at, status, total_cents"
# The one question every variant answers, from the partition of `table_rows` rows ($1). The
# bad variants differ from the good ones only in the table (which index exists) or in how the
# month is written.
IN_MONTH = "created_at >= $4 AND created_at < $5"
WRAPPED_MONTH = "date_trunc('month', created_at, 'UTC') = $4"


def _select(table: str, month: str = IN_MONTH) -> str:
    return (
        f"SELECT {COLUMNS} FROM {table}"
        f" WHERE table_rows = $1 AND customer_id = $2 AND status = $3 AND {month}"
        " ORDER BY created_at, id"
    )


SEQ_SCAN_SQL = _select("missing_index_bare")
FUNCTION_WRAPPED_SQL = _select("missing_index_created", WRAPPED_MONTH)
LOW_CARDINALITY_SQL = _select("missing_index_status")
WRONG_ORDER_SQL = _select("missing_index_created_customer")
BTREE_SQL = _select("missing_index_customer")
RANGE_SQL = _select("missing_index_created")
COMPOSITE_SQL = _select("missing_index_customer_created")
CLUSTERED_SQL = _select("missing_index_customer_clustered")

Rows = Annotated[int, Query(ge=1, le=max(TABLE_ROWS), description="the table's rows")]
Customer = Annotated[int, Query(ge=1, le=MAX_CUSTOMER, description="customer id")]
Year = Annotated[int, Query(ge=FIRST_YEAR, le=LAST_YEAR, description="year of the orders")]
Month = Annotated[int, Query(ge=1, le=12, description="month of the orders, 1 to 12")]
Status = Annotated[
    str,
    Query(
        max_length=max(map(len, STATUSES)),
        pattern=f"^({'|'.join(STATUSES)})$",
        description=f"order status: {', '.join(STATUSES)}",
    ),
]


@pair.variant("bad")
async def seq_scan(
    pool: Pool, rows: Rows, customer: Customer, year: Year, month: Month, status: Status
) -> list[dict[str, Any]]:
    """No index on customer_id: a sequential scan reads every row."""
    return await _orders(pool, SEQ_SCAN_SQL, rows, customer, status, *month_range(year, month))


@pair.variant("bad")
async def function_wrapped(
    pool: Pool, rows: Rows, customer: Customer, year: Year, month: Month, status: Status
) -> list[dict[str, Any]]:
    """date_trunc('month', created_at) = $: the index on created_at cannot serve it."""
    start, _ = month_range(year, month)
    return await _orders(pool, FUNCTION_WRAPPED_SQL, rows, customer, status, start)


@pair.variant("bad")
async def low_cardinality(
    pool: Pool, rows: Rows, customer: Customer, year: Year, month: Month, status: Status
) -> list[dict[str, Any]]:
    """An index on status (3 values): no help, and the generic plan's bitmap scan is slower."""
    sql = LOW_CARDINALITY_SQL
    return await _orders(pool, sql, rows, customer, status, *month_range(year, month))


@pair.variant("bad")
async def wrong_order(
    pool: Pool, rows: Rows, customer: Customer, year: Year, month: Month, status: Status
) -> list[dict[str, Any]]:
    """Composite (created_at, customer_id): reads every entry of the month to find one customer."""
    return await _orders(pool, WRONG_ORDER_SQL, rows, customer, status, *month_range(year, month))


@pair.variant("good")
async def btree(
    pool: Pool, rows: Rows, customer: Customer, year: Year, month: Month, status: Status
) -> list[dict[str, Any]]:
    """B-tree on customer_id: the customer's orders only (about 100), then the month."""
    return await _orders(pool, BTREE_SQL, rows, customer, status, *month_range(year, month))


@pair.variant("good")
async def range_rewrite(
    pool: Pool, rows: Rows, customer: Customer, year: Year, month: Month, status: Status
) -> list[dict[str, Any]]:
    """Range rewrite: created_at >= $ AND < $ uses the index on created_at (one month)."""
    return await _orders(pool, RANGE_SQL, rows, customer, status, *month_range(year, month))


@pair.variant("good")
async def composite(
    pool: Pool, rows: Rows, customer: Customer, year: Year, month: Month, status: Status
) -> list[dict[str, Any]]:
    """Composite (customer_id, created_at): straight to the customer's month."""
    return await _orders(pool, COMPOSITE_SQL, rows, customer, status, *month_range(year, month))


@pair.variant("good")
async def clustered(
    pool: Pool, rows: Rows, customer: Customer, year: Year, month: Month, status: Status
) -> list[dict[str, Any]]:
    """The same B-tree on a table stored in its order (CLUSTER): the customer's rows share pages."""
    return await _orders(pool, CLUSTERED_SQL, rows, customer, status, *month_range(year, month))


async def _orders(pool: asyncpg.Pool, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with pool.acquire() as conn:
        return _serialize(await conn.fetch(sql, *args))


def month_range(year: int, month: int) -> tuple[datetime, datetime]:
    """[first instant of the month, first instant of the next), in UTC."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _serialize(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    """The body, one serializer for every variant."""
    return [
        {
            "id": r["id"],
            "customer_id": r["customer_id"],
            "created_at": r["created_at"].isoformat(),
            "status": r["status"],
            "total_cents": r["total_cents"],
        }
        for r in rows
    ]


@pair.lifespan
@contextlib.asynccontextmanager
async def _visibility(app: FastAPI) -> AsyncIterator[None]:
    """Vacuum the tables once at start, so no plan changes mid-run when autovacuum first
    visits a freshly loaded table."""
    await vacuum(app.state.pool, TABLES)
    yield


# Seed data: one table per structure, partitioned by size (LIST on table_rows): the partition of
# each size in TABLE_ROWS up to the profile's max_rows holds that many orders, the same in every
# structure's table (a stream of the pair's own, DATA_SEED and the size, not the table's); ids
# follow created_at, as an append-only orders table's do. The planner prunes a query to its
# partition, so a request reads a table of `rows` rows and no other. Partitions past max_rows
# stay empty: a request for them lists nothing.
DATA_SEED = 13
# Structure -> the secondary index its variants are given (on each partition).
STRUCTURES = {
    "bare": "",
    "status": "(status)",
    "created": "(created_at)",
    "created_customer": "(created_at, customer_id)",
    "customer": "(customer_id)",
    "customer_created": "(customer_id, created_at)",
    # Stored in customer_id order (below), as CLUSTER on the index would leave it.
    "customer_clustered": "(customer_id)",
}
CLUSTERED = "customer_clustered"
TABLES = [f"missing_index_{structure}" for structure in STRUCTURES]
ORDERS_DDL = """CREATE TABLE {table} (
    table_rows  integer     NOT NULL,
    id          bigint      NOT NULL,
    customer_id integer     NOT NULL,
    created_at  timestamptz NOT NULL,
    status      text        NOT NULL,
    total_cents integer     NOT NULL,
    PRIMARY KEY (table_rows, id)
) PARTITION BY LIST (table_rows)"""
PARTITION_DDL = "CREATE TABLE {table}_{rows} PARTITION OF {table} FOR VALUES IN ({rows})"
SPAN_S = int((datetime(START.year + MONTHS // 12, 1, 1, tzinfo=UTC) - START).total_seconds())
Order = tuple[int, int, int, datetime, str, int]


# Kept while seeding: every table draws the same rows of every size, so generating them once
# makes seeding faster (six tables of the quick profile took 7.7 s to seed here without it, 5.7 s
# with it). Seeding runs in a process of its own (`python -m pairbench.targets seed`), which
# exits after; the standard profile's 1.11 million rows take about 200 MB meanwhile.
@functools.lru_cache(maxsize=len(TABLE_ROWS))
def order_rows(rows: int) -> tuple[Order, ...]:
    """`rows` orders over MONTHS months, in created_at order, ORDERS_PER_CUSTOMER per customer."""
    return tuple(_generate(rows))


def _generate(rows: int) -> Iterator[Order]:
    rng = random.Random(f"{DATA_SEED}:{rows}")
    customers = max(1, rows // ORDERS_PER_CUSTOMER)
    offsets = sorted(rng.randrange(SPAN_S) for _ in range(rows))
    statuses = rng.choices(STATUSES, weights=STATUS_WEIGHTS, k=rows)
    for order_id, (offset, status) in enumerate(zip(offsets, statuses, strict=True), start=1):
        yield (
            rows,
            order_id,
            rng.randint(1, customers),
            START + timedelta(seconds=offset),
            status,
            rng.randint(100, 100_000),
        )


def _by_customer(order: Order) -> tuple[int, int]:
    return order[2], order[1]  # customer_id, then id


def _declare(structure: str) -> None:
    table = f"missing_index_{structure}"
    ddl = ";\n".join(
        [ORDERS_DDL.format(table=table)]
        + [PARTITION_DDL.format(table=table, rows=rows) for rows in TABLE_ROWS]
    )
    columns = STRUCTURES[structure]
    # On the partitioned table: PostgreSQL builds the same index on every partition.
    indexes = f"CREATE INDEX {table}_idx ON {table} {columns}" if columns else ""

    @pair.table(table, ddl, indexes=indexes)
    def _orders_table(size: Size, rng: random.Random) -> Iterator[Order]:
        for rows in TABLE_ROWS:
            if rows <= size["max_rows"]:
                if structure == CLUSTERED:
                    # What CLUSTER ... USING the customer_id index does, without its rewrite
                    # (CLUSTER of a partitioned table cannot run in the seeding transaction).
                    yield from sorted(order_rows(rows), key=_by_customer)
                else:
                    yield from order_rows(rows)


for _structure in STRUCTURES:
    _declare(_structure)


# The micro benchmark (docs/architecture.md, "The micro suite"): the sequential scan against
# the B-tree and the composite on asyncpg directly, at a size every profile holds.
MICRO_ROWS = 10_000
MICRO_REQUEST: dict[str, Any] = {
    "rows": MICRO_ROWS,
    "customer": 1,
    "year": LAST_YEAR,
    "month": 12,
    "status": "shipped",
}


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_visibility(on: MicroServers) -> AsyncIterator[None]:
    """Vacuumed as the app's start vacuums them, so the cores take the app's plans."""
    await vacuum(on.pool, TABLES)
    yield


@pair.micro("seq_scan", knob=MICRO_ROWS)
async def _micro_seq_scan(on: MicroServers) -> Any:
    return await seq_scan(on.pool, **MICRO_REQUEST)


@pair.micro("btree", knob=MICRO_ROWS)
async def _micro_btree(on: MicroServers) -> Any:
    return await btree(on.pool, **MICRO_REQUEST)


@pair.micro("composite", knob=MICRO_ROWS)
async def _micro_composite(on: MicroServers) -> Any:
    return await composite(on.pool, **MICRO_REQUEST)


# The workshop exercise (docs/architecture.md, "Exercises"): the index exists, the query hides
# it. A handler can fix this one (the others need a schema change, not code).
pair.exercise(
    reference="range_rewrite",
    start="function_wrapped",
    task="""Return the same orders as `function_wrapped`: customer `customer`'s orders with
    status `status` in month `month` of `year`, oldest first, from the `rows`-row partition of
    `missing_index_created`. That table has a B-tree on created_at, which the query in
    `function_wrapped` cannot use because it wraps the column in a function (print
    FUNCTION_WRAPPED_SQL to read it; COLUMNS are its columns): ask for the same month so that
    the index can serve it (month_range gives the month's first instant and the next
    month's).""",
    knob=100_000,
    min_ratio=1.5,
)
