"""The driver's statement cache off vs on: one multi-join query, planned per request or once.

Before PostgreSQL executes a statement it parses it, resolves every name against the catalogue
and plans it. For a lookup by primary key in one table that costs a few tens of microseconds;
for an order page that joins eight tables the planner weighs join orders and methods, and
planning costs more than executing the plan it picks. A driver that prepares the statement once
per connection lets the server skip the parse on every later run and, after five runs with
plans made for the values given, keep one generic plan and stop planning: asyncpg does so by
default (its statement cache), psycopg once a query has run `prepare_threshold` (5) times on a
connection. The cache is usually turned off for a transaction-pooling PgBouncer, where the next
server connection may not know a statement prepared on the last; the price is paid on every
request.

The four variants send the same statement through four pools that differ only in that setting,
so the handlers are the same lines and the lesson is one keyword each: asyncpg's pool made with
`statement_cache_size=0` or with its default (100 statements per connection), psycopg's with
`prepare_threshold=None` or with its default (5). The knob is the number of tables the order
page joins, 1 to 8: the planning work grows with it, the execution (one row by primary key
through each join) hardly does. asyncpg without its cache also pays a round trip more: it still
asks the server to parse and describe the statement, then sends it again to be parsed, planned
and run, so even the one-table lookup costs it more than psycopg's single round trip. The
counters come from pg_stat_statements, read at every scrape of /metrics
(`pair.counter(read=...)`): statements planned, executed, and the server's time in each, for
this pair's statements only.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
import psycopg
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ..counters import MS_PER_S
from ..data import WORDS, Size, person, title
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference
from ._maintenance import vacuum

MAX_TABLES = 8  # the knob's top: the order and the seven tables around it
MAX_ORDER_ID = 2**31 - 1  # prepared_orders.id is an integer column: a larger id cannot exist
# Each pool's size, opened in full at startup: a trial never pays for a connection, and each
# caching pool reaches its steady state (every connection has prepared the statement) quickly.
POOL_SIZE = 4
POOL_OPEN_TIMEOUT_S = 30.0  # the lifespan fails loudly if the database is unreachable
ACQUIRE_TIMEOUT_S = 10.0  # the warm route holds every connection at once: never wait forever
# Runs per connection that bring a caching driver to its steady state: psycopg prepares on the
# 5th run (prepare_threshold), then PostgreSQL plans 5 custom plans and a generic one before it
# stops planning. Twice that, for margin.
WARM_RUNS = 24
WARM_ORDER_ID = 1  # exists in every profile
# How every statement of the order page starts, whatever it joins: the counters select the
# pair's statements in pg_stat_statements by it.
STATEMENT_START = "SELECT prepared_orders.id, prepared_orders.quantity"

# The lesson: the same pools, with and without the driver's statement cache.
ASYNCPG_UNCACHED: dict[str, Any] = {"statement_cache_size": 0}  # parse and plan every run
ASYNCPG_CACHED: dict[str, Any] = {}  # asyncpg's default: 100 statements cached per connection
PSYCOPG_UNPREPARED: dict[str, Any] = {"prepare_threshold": None}  # never prepare
PSYCOPG_PREPARED: dict[str, Any] = {}  # psycopg's default: prepared on a query's 5th run


class Order(Body):
    """An order and the names the joined tables add (null for the tables not joined)."""

    id: int
    quantity: int
    customer: str | None
    city: str | None
    country: str | None
    product: str | None
    category: str | None
    supplier: str | None
    warehouse: str | None


class Warmed(Body):
    """What the warm route ran: on how many connections, how many times each."""

    connections: int
    runs: int


pair = Pair(
    name="prepared",
    title="Statement cache off vs on",
    summary="The same join planned on every request vs prepared once per connection.",
    knob=Knob("tables", "tables joined", "tables"),
    sizes={
        "test": {"orders": 1_000, "customers": 200, "products": 100},
        "quick": {"orders": 10_000, "customers": 2_000, "products": 500},
        "standard": {"orders": 100_000, "customers": 20_000, "products": 5_000},
        "talk": {"orders": 100_000, "customers": 20_000, "products": 5_000},
    },
    # The mechanism: a statement planned per request without the cache, none with it; one
    # execution per request either way, and the server's time in each.
    counters=["plans", "plan_seconds", "executions", "execution_seconds"],
    body=Order,
    reference=Reference(
        figure="an 8-table join plans in 0.9 to 1.5 ms and executes in 0.1 to 0.3 ms;"
        " near 1x for a primary-key lookup",
        source="issue 13's check with psql outside pairbench",
        knob=MAX_TABLES,
    ),
)


def _statements(column: str) -> str:
    """The sum of a pg_stat_statements column over this pair's statements (the order page's,
    whatever the driver or the number of joins), in the current database."""
    return (
        f"SELECT coalesce(sum({column}), 0) FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        f" AND query LIKE '{STATEMENT_START}%'"
    )


# Read from pg_stat_statements at every scrape (`pair.counter(read=...)`): only the server knows
# whether it planned a statement. Planning is counted because the harness's PostgreSQL sets
# pg_stat_statements.track_planning = on (harness/postgres.py).
PLANS = pair.counter(
    "plans",
    "Times PostgreSQL planned the order page's statement (pg_stat_statements plans)",
    label="statements planned",
    unit="plans",
    read=_statements("plans"),
)
PLAN_SECONDS = pair.counter(
    "plan_seconds",
    "Time PostgreSQL spent planning the order page's statement (pg_stat_statements)",
    label="time planning",
    unit="ms",
    scale=MS_PER_S,
    read=_statements("total_plan_time / 1000"),
)
EXECUTIONS = pair.counter(
    "executions",
    "Times PostgreSQL executed the order page's statement (pg_stat_statements calls)",
    label="statements executed",
    unit="executions",
    read=_statements("calls"),
)
EXECUTION_SECONDS = pair.counter(
    "execution_seconds",
    "Time PostgreSQL spent executing the order page's statement (pg_stat_statements)",
    label="time executing",
    unit="ms",
    scale=MS_PER_S,
    read=_statements("total_exec_time / 1000"),
)

# The order page's joins, in the order the knob adds them: (the name it adds to the body, the
# table, the foreign key it is reached by from a table joined before it).
JOINS = (
    ("customer", "prepared_customers", "prepared_orders.customer_id"),
    ("city", "prepared_cities", "prepared_customers.city_id"),
    ("country", "prepared_countries", "prepared_cities.country_id"),
    ("product", "prepared_products", "prepared_orders.product_id"),
    ("category", "prepared_categories", "prepared_products.category_id"),
    ("supplier", "prepared_suppliers", "prepared_products.supplier_id"),
    ("warehouse", "prepared_warehouses", "prepared_orders.warehouse_id"),
)


def order_sql(tables: int, param: str) -> str:
    """The order page joining `tables` tables (1: the order alone), with `param` for its id.

    Tables are named in full, without aliases: PostgreSQL 18's pg_stat_statements tells
    statements apart by the names a query gives its tables, so `FROM prepared_orders AS o`
    would share its entry, and the counters, with any statement of the same shape that also
    says `AS o`.
    """
    joined = JOINS[: tables - 1]
    return " ".join(
        [
            ", ".join([STATEMENT_START, *(f"{table}.name AS {name}" for name, table, _ in joined)]),
            "FROM prepared_orders",
            *(f"JOIN {table} ON {table}.id = {key}" for _, table, key in joined),
            f"WHERE prepared_orders.id = {param}",
        ]
    )


# One statement per knob value for both drivers; only the placeholder differs ($1 vs %s).
ASYNCPG_SQL = {tables: order_sql(tables, "$1") for tables in range(1, MAX_TABLES + 1)}
PSYCOPG_SQL = {tables: order_sql(tables, "%s") for tables in range(1, MAX_TABLES + 1)}

NOT_FOUND = {404: "no order with that id"}
OrderId = Annotated[int, Query(alias="id", ge=1, le=MAX_ORDER_ID, description="order id")]
Tables = Annotated[
    int, Query(ge=1, le=MAX_TABLES, description=f"tables the page joins, 1 to {MAX_TABLES}")
]


@pair.variant("bad", responses=NOT_FOUND)
async def asyncpg_uncached(pools: PairPools, tables: Tables, order_id: OrderId) -> dict[str, Any]:
    """asyncpg, statement_cache_size=0: parsed and planned again on every request."""
    async with pools.asyncpg_uncached.acquire() as conn:
        row = await conn.fetchrow(ASYNCPG_SQL[tables], order_id)
    return _order(row, order_id)


@pair.variant("bad", responses=NOT_FOUND)
async def psycopg_unprepared(pools: PairPools, tables: Tables, order_id: OrderId) -> dict[str, Any]:
    """psycopg, prepare_threshold=None: parsed and planned again on every request."""
    async with pools.psycopg_unprepared.connection() as conn:
        row = await (await conn.execute(PSYCOPG_SQL[tables], (order_id,))).fetchone()
    return _order(row, order_id)


@pair.variant("good", responses=NOT_FOUND)
async def asyncpg_cached(pools: PairPools, tables: Tables, order_id: OrderId) -> dict[str, Any]:
    """asyncpg's statement cache (its default): prepared once per connection, plan reused."""
    async with pools.asyncpg_cached.acquire() as conn:
        row = await conn.fetchrow(ASYNCPG_SQL[tables], order_id)
    return _order(row, order_id)


@pair.variant("good", responses=NOT_FOUND)
async def psycopg_prepared(pools: PairPools, tables: Tables, order_id: OrderId) -> dict[str, Any]:
    """psycopg's default prepare_threshold (5): prepared on the 5th run, plan reused."""
    async with pools.psycopg_prepared.connection() as conn:
        row = await (await conn.execute(PSYCOPG_SQL[tables], (order_id,))).fetchone()
    return _order(row, order_id)


@pair.route("warm", body=Warmed)
async def warm(pools: PairPools, tables: Tables) -> dict[str, int]:
    """Run the page at `tables` WARM_RUNS times on every connection of every pool.

    The scenario's [prepare] asks for it before verifying and measuring at a knob value, so
    verification sees each driver in its steady state (the caching pools plan nothing, the
    others plan every run) and every backend's catalogue caches are warm for all four variants
    alike. A long-running server gets there with its first requests; this gets there at once.
    """
    async with contextlib.AsyncExitStack() as stack:
        # Every connection held at once: one at a time, a pool could hand out the same one.
        for apg in (pools.asyncpg_uncached, pools.asyncpg_cached):
            held = [
                await stack.enter_async_context(apg.acquire(timeout=ACQUIRE_TIMEOUT_S))
                for _ in range(POOL_SIZE)
            ]
            for conn in held:
                for _ in range(WARM_RUNS):
                    await conn.fetchrow(ASYNCPG_SQL[tables], WARM_ORDER_ID)
        for pg in (pools.psycopg_unprepared, pools.psycopg_prepared):
            opened = [
                await stack.enter_async_context(pg.connection(timeout=ACQUIRE_TIMEOUT_S))
                for _ in range(POOL_SIZE)
            ]
            for aconn in opened:
                for _ in range(WARM_RUNS):
                    await aconn.execute(PSYCOPG_SQL[tables], (WARM_ORDER_ID,))
    return {"connections": 4 * POOL_SIZE, "runs": WARM_RUNS}


def _order(row: asyncpg.Record | dict[str, Any] | None, order_id: int) -> dict[str, Any]:
    """The body, one serializer for every variant: the names of the tables not joined are null."""
    if row is None:
        raise HTTPException(status_code=404, detail=f"no order with id {order_id}")
    return {
        "id": row["id"],
        "quantity": row["quantity"],
        **{name: row.get(name) for name, *_ in JOINS},
    }


# The pools: the pair's own resources, one per variant, the same size, opened at startup.


@dataclass(frozen=True)
class Pools:
    """One pool per variant, alike but for the statement cache (the lesson's settings above)."""

    asyncpg_uncached: asyncpg.Pool
    asyncpg_cached: asyncpg.Pool
    psycopg_unprepared: AsyncConnectionPool[psycopg.AsyncConnection[Any]]
    psycopg_prepared: AsyncConnectionPool[psycopg.AsyncConnection[Any]]


def _pools(request: Request) -> Pools:
    pools: Pools = request.app.state.prepared_pair
    return pools


PairPools = Annotated[Pools, Depends(_pools)]


@contextlib.asynccontextmanager
async def _open_pools(dsn: str) -> AsyncIterator[Pools]:
    """The four pools, full, closed when the block exits (the app's lifespan and the micro
    suite's setup share it)."""
    async with contextlib.AsyncExitStack() as stack:

        async def asyncpg_pool(settings: dict[str, Any]) -> asyncpg.Pool:
            # No idle timeout: a connection closed for idling would take its prepared
            # statements with it, and the next trial would pay to prepare them again.
            pool = await asyncpg.create_pool(
                dsn,
                min_size=POOL_SIZE,
                max_size=POOL_SIZE,
                max_inactive_connection_lifetime=0,
                **settings,
            )
            stack.push_async_callback(pool.close)
            return pool

        async def psycopg_pool(
            name: str, settings: dict[str, Any]
        ) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
            pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
                dsn,
                min_size=POOL_SIZE,
                max_size=POOL_SIZE,
                # autocommit, as asyncpg behaves: otherwise BEGIN and COMMIT add two round
                # trips to every request, which would blur the comparison of the drivers.
                kwargs={"autocommit": True, "row_factory": dict_row, **settings},
                open=False,
                name=name,
            )
            # wait=True: fail at startup, not at the first request, if the database is down.
            await pool.open(wait=True, timeout=POOL_OPEN_TIMEOUT_S)
            stack.push_async_callback(pool.close)
            return pool

        yield Pools(
            asyncpg_uncached=await asyncpg_pool(ASYNCPG_UNCACHED),
            asyncpg_cached=await asyncpg_pool(ASYNCPG_CACHED),
            psycopg_unprepared=await psycopg_pool("psycopg_unprepared", PSYCOPG_UNPREPARED),
            psycopg_prepared=await psycopg_pool("psycopg_prepared", PSYCOPG_PREPARED),
        )


@pair.lifespan
@contextlib.asynccontextmanager
async def _resources(app: FastAPI) -> AsyncIterator[None]:
    """Vacuum the tables, then open the pools; closed at shutdown."""
    # Vacuumed first: autovacuum coming by mid-run (freshly loaded tables invite it) would
    # update the tables' statistics and so invalidate every cached plan at once.
    await vacuum(app.state.pool, TABLES)
    async with _open_pools(app.state.settings.pg_dsn) as pools:
        app.state.prepared_pair = pools
        yield


# Seed data: an order, its customer and product, and the tables around them. Only the order's
# id is looked up; every join follows a foreign key to a primary key, one row each.
N_COUNTRIES = 40
N_CITIES = 400
N_CATEGORIES = 30
N_SUPPLIERS = 100
N_WAREHOUSES = 12
MAX_QUANTITY = 20


def _names(count: int, rng: random.Random) -> Iterator[tuple[int, str]]:
    for row_id in range(1, count + 1):
        yield row_id, f"{rng.choice(WORDS).capitalize()} {row_id}"


@pair.table(
    "prepared_countries",
    "CREATE TABLE prepared_countries (id integer PRIMARY KEY, name text NOT NULL)",
)
def _countries(size: Size, rng: random.Random) -> Iterator[tuple[int, str]]:
    return _names(N_COUNTRIES, rng)


@pair.table(
    "prepared_cities",
    """CREATE TABLE prepared_cities (
        id         integer PRIMARY KEY,
        name       text    NOT NULL,
        country_id integer NOT NULL REFERENCES prepared_countries (id)
    )""",
)
def _cities(size: Size, rng: random.Random) -> Iterator[tuple[int, str, int]]:
    for city_id, name in _names(N_CITIES, rng):
        yield city_id, name, rng.randint(1, N_COUNTRIES)


@pair.table(
    "prepared_customers",
    """CREATE TABLE prepared_customers (
        id      integer PRIMARY KEY,
        name    text    NOT NULL,
        city_id integer NOT NULL REFERENCES prepared_cities (id)
    )""",
)
def _customers(size: Size, rng: random.Random) -> Iterator[tuple[int, str, int]]:
    for customer_id in range(1, size["customers"] + 1):
        yield customer_id, person(rng), rng.randint(1, N_CITIES)


@pair.table(
    "prepared_categories",
    "CREATE TABLE prepared_categories (id integer PRIMARY KEY, name text NOT NULL)",
)
def _categories(size: Size, rng: random.Random) -> Iterator[tuple[int, str]]:
    return _names(N_CATEGORIES, rng)


@pair.table(
    "prepared_suppliers",
    "CREATE TABLE prepared_suppliers (id integer PRIMARY KEY, name text NOT NULL)",
)
def _suppliers(size: Size, rng: random.Random) -> Iterator[tuple[int, str]]:
    return _names(N_SUPPLIERS, rng)


@pair.table(
    "prepared_products",
    """CREATE TABLE prepared_products (
        id          integer PRIMARY KEY,
        name        text    NOT NULL,
        category_id integer NOT NULL REFERENCES prepared_categories (id),
        supplier_id integer NOT NULL REFERENCES prepared_suppliers (id)
    )""",
)
def _products(size: Size, rng: random.Random) -> Iterator[tuple[int, str, int, int]]:
    for product_id in range(1, size["products"] + 1):
        yield product_id, title(rng), rng.randint(1, N_CATEGORIES), rng.randint(1, N_SUPPLIERS)


@pair.table(
    "prepared_warehouses",
    "CREATE TABLE prepared_warehouses (id integer PRIMARY KEY, name text NOT NULL)",
)
def _warehouses(size: Size, rng: random.Random) -> Iterator[tuple[int, str]]:
    return _names(N_WAREHOUSES, rng)


@pair.table(
    "prepared_orders",
    """CREATE TABLE prepared_orders (
        id           integer PRIMARY KEY,
        customer_id  integer NOT NULL REFERENCES prepared_customers (id),
        product_id   integer NOT NULL REFERENCES prepared_products (id),
        warehouse_id integer NOT NULL REFERENCES prepared_warehouses (id),
        quantity     integer NOT NULL
    )""",
)
def _orders(size: Size, rng: random.Random) -> Iterator[tuple[int, int, int, int, int]]:
    for order_id in range(1, size["orders"] + 1):
        yield (
            order_id,
            rng.randint(1, size["customers"]),
            rng.randint(1, size["products"]),
            rng.randint(1, N_WAREHOUSES),
            rng.randint(1, MAX_QUANTITY),
        )


TABLES = [table.name for table in pair.tables]


# The micro benchmark (docs/architecture.md, "The micro suite"): asyncpg without and with its
# statement cache, no HTTP, the eight-table page, on pools warmed as the scenario warms them.
MICRO_ORDER_ID = 7


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_pools(on: MicroServers) -> AsyncIterator[Pools]:
    """The pair's pools on the micro suite's servers, warmed at the cores' knob value."""
    await vacuum(on.pool, TABLES)
    async with _open_pools(on.dsn) as pools:
        await warm(pools, tables=MAX_TABLES)
        yield pools


@pair.micro("asyncpg_uncached", knob=MAX_TABLES)
async def _micro_uncached(on: MicroServers) -> Any:
    return await asyncpg_uncached(on.resource, tables=MAX_TABLES, order_id=MICRO_ORDER_ID)


@pair.micro("asyncpg_cached", knob=MAX_TABLES)
async def _micro_cached(on: MicroServers) -> Any:
    return await asyncpg_cached(on.resource, tables=MAX_TABLES, order_id=MICRO_ORDER_ID)


pair.no_exercise(
    "the fix is a connection setting, not handler code: the variants' handlers are the same"
    " lines, and only their pool's statement_cache_size (asyncpg) or prepare_threshold"
    " (psycopg) differs (its page and the workshop notebook teach it)"
)
