"""prepared: four pools serve the same order page; only the caching ones stop planning it.

The counters are read from pg_stat_statements at every scrape (`pair.counter(read=...)`), on
the session's real PostgreSQL, whose settings turn on pg_stat_statements.track_planning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg
import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from pairbench.harness import metricsclient, services
from pairbench.targets.pairs.prepared import (
    ASYNCPG_CACHED,
    ASYNCPG_SQL,
    ASYNCPG_UNCACHED,
    EXECUTIONS,
    JOINS,
    MAX_ORDER_ID,
    MAX_TABLES,
    PLAN_SECONDS,
    PLANS,
    POOL_SIZE,
    PSYCOPG_PREPARED,
    PSYCOPG_SQL,
    PSYCOPG_UNPREPARED,
    WARM_RUNS,
    pair,
)
from pairbench.targets.registry import document

from .counting import get_counting

COUNTERS = document()["counters"]
VARIANTS = list(pair.variants)
CACHING = {"asyncpg_cached", "psycopg_prepared"}
TEST_ORDERS = 1_000  # the test profile's orders
REQUESTS = 20  # per variant, for the per-request figures


def _warm(client: httpx.Client, tables: int) -> None:
    response = client.get(f"/prepared/warm?tables={tables}")
    assert response.status_code == 200, response.text
    assert response.json() == {"connections": 4 * POOL_SIZE, "runs": WARM_RUNS}


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role) for v in pair.variants.values()] == [
        ("asyncpg_uncached", "bad"),
        ("psycopg_unprepared", "bad"),
        ("asyncpg_cached", "good"),
        ("psycopg_prepared", "good"),
    ]


def test_the_pools_differ_only_in_the_cache_setting() -> None:
    # The lesson is the setting: the handlers are the same lines on differently set pools.
    assert ASYNCPG_UNCACHED == {"statement_cache_size": 0} and ASYNCPG_CACHED == {}
    assert PSYCOPG_UNPREPARED == {"prepare_threshold": None} and PSYCOPG_PREPARED == {}


@pytest.mark.parametrize("tables", range(1, MAX_TABLES + 1))
def test_same_order_from_every_variant(target: httpx.Client, tables: int) -> None:
    for order_id in (1, 517, TEST_ORDERS):
        replies = {v: target.get(f"{pair.path(v)}?tables={tables}&id={order_id}") for v in VARIANTS}
        assert {v: r.status_code for v, r in replies.items()} == dict.fromkeys(VARIANTS, 200)
        bodies = [r.json() for r in replies.values()]
        assert all(b == bodies[0] for b in bodies), (tables, order_id)
        # The names of the tables joined are there, the others are null.
        names = [name for name, *_ in JOINS]
        assert [bodies[0][n] is not None for n in names] == [i < tables - 1 for i in range(7)]


def test_the_page_follows_the_foreign_keys(
    target: httpx.Client, servers: services.Endpoints
) -> None:
    # Written apart from the pair's SQL: the order's customer's city's country, its product's
    # category and supplier, its warehouse.
    with psycopg.connect(servers.pg_dsn, row_factory=dict_row) as conn:
        expected = conn.execute(
            """SELECT o.id, o.quantity, cu.name AS customer, ci.name AS city,
                      co.name AS country, pr.name AS product, ca.name AS category,
                      su.name AS supplier, wh.name AS warehouse
               FROM prepared_orders o, prepared_customers cu, prepared_cities ci,
                    prepared_countries co, prepared_products pr, prepared_categories ca,
                    prepared_suppliers su, prepared_warehouses wh
               WHERE o.id = 42 AND cu.id = o.customer_id AND ci.id = cu.city_id
                 AND co.id = ci.country_id AND pr.id = o.product_id
                 AND ca.id = pr.category_id AND su.id = pr.supplier_id
                 AND wh.id = o.warehouse_id"""
        ).fetchone()
    assert target.get(f"/prepared/psycopg_prepared?tables={MAX_TABLES}&id=42").json() == expected


def test_a_missing_order_is_404_from_every_variant(target: httpx.Client) -> None:
    for variant in VARIANTS:
        response = target.get(f"{pair.path(variant)}?tables=3&id={TEST_ORDERS + 1}")
        assert response.status_code == 404, variant
        assert response.json() == {"detail": f"no order with id {TEST_ORDERS + 1}"}


@pytest.mark.parametrize("tables", [1, MAX_TABLES])
def test_planned_every_request_without_the_cache_never_with_it(
    target: httpx.Client, tables: int
) -> None:
    _warm(target, tables)
    for variant in VARIANTS:
        for order_id in (3, 300, 900):
            response, counters = get_counting(
                target, f"{pair.path(variant)}?tables={tables}&id={order_id}"
            )
            assert response.status_code == 200
            assert counters["plans"] == (0 if variant in CACHING else 1), (variant, counters)
            assert counters["executions"] == 1, (variant, counters)


def test_planning_outweighs_execution_at_eight_tables(target: httpx.Client) -> None:
    # The reference: an 8-table join plans in 0.9 to 1.5 ms and executes in 0.1 to 0.3 ms.
    # Here the server's own times, summed over REQUESTS requests of each uncached variant.
    _warm(target, MAX_TABLES)
    for variant in ("asyncpg_uncached", "psycopg_unprepared"):
        before = target.get("/metrics").text
        for order_id in range(1, REQUESTS + 1):
            target.get(f"{pair.path(variant)}?tables={MAX_TABLES}&id={order_id}")
        counters = metricsclient.delta(before, target.get("/metrics").text, COUNTERS)
        assert counters["plans"] == counters["executions"] == REQUESTS, counters
        assert counters["plan_seconds"] > 2 * counters["execution_seconds"] > 0, counters


def test_planning_grows_with_the_tables_joined(target: httpx.Client) -> None:
    planning = {}
    for tables in (1, MAX_TABLES):
        _warm(target, tables)
        before = target.get("/metrics").text
        for order_id in range(1, REQUESTS + 1):
            target.get(f"/prepared/psycopg_unprepared?tables={tables}&id={order_id}")
        counters = metricsclient.delta(before, target.get("/metrics").text, COUNTERS)
        planning[tables] = counters["plan_seconds"]
    assert planning[MAX_TABLES] > 3 * planning[1], planning


async def _plans_per_run(
    dsn: str, run: Callable[[Any], Any], connect: Callable[[], Any], runs: int
) -> list[float]:
    """Plans counted by pg_stat_statements for each of `runs` runs on one fresh connection."""
    reader = await asyncpg.connect(dsn)
    conn = await connect()
    try:
        plans = []
        for _ in range(runs):
            before = await reader.fetchval(PLANS.read)
            await run(conn)
            plans.append(float(await reader.fetchval(PLANS.read) - before))
        return plans
    finally:
        await conn.close()
        await reader.close()


@pytest.mark.parametrize(
    "driver,settings,caches",
    [
        ("asyncpg", ASYNCPG_UNCACHED, False),
        ("asyncpg", ASYNCPG_CACHED, True),
        ("psycopg", PSYCOPG_UNPREPARED, False),
        ("psycopg", PSYCOPG_PREPARED, True),
    ],
)
def test_a_new_connection_plans_until_its_driver_caches_the_statement(
    servers: services.Endpoints, driver: str, settings: Mapping[str, Any], caches: bool
) -> None:
    # What the warm route relies on: within WARM_RUNS runs on one connection, a caching
    # driver's statement stops being planned (asyncpg prepares at once, psycopg at the 5th
    # run; then PostgreSQL makes 5 custom plans and one generic plan); without the cache,
    # every run is planned.
    dsn = servers.pg_dsn

    async def connect() -> Any:
        if driver == "asyncpg":
            return await asyncpg.connect(dsn, **settings)
        return await psycopg.AsyncConnection.connect(dsn, autocommit=True, **settings)

    async def run(conn: Any) -> None:
        if driver == "asyncpg":
            assert await conn.fetchrow(ASYNCPG_SQL[MAX_TABLES], 5) is not None
        else:
            cursor = await conn.execute(PSYCOPG_SQL[MAX_TABLES], (5,))
            assert await cursor.fetchone() is not None

    plans = asyncio.run(_plans_per_run(dsn, run, connect, WARM_RUNS))
    if not caches:
        assert plans == [1.0] * WARM_RUNS
    else:
        assert plans[0] == 1.0  # a new connection plans the statement at least once
        assert plans[-WARM_RUNS // 2 :] == [0.0] * (WARM_RUNS // 2), plans


def test_other_statements_on_the_tables_are_not_counted(
    target: httpx.Client, servers: services.Endpoints
) -> None:
    before = target.get("/metrics").text
    with psycopg.connect(servers.pg_dsn) as conn:
        conn.execute("SELECT count(*) FROM prepared_orders").fetchone()
        # The same shape under other names: PostgreSQL 18 tells statements apart by the names
        # a query gives its tables, and these are not the page's.
        conn.execute("SELECT o.id, o.quantity FROM prepared_orders AS o WHERE o.id = 1").fetchone()
    counters = metricsclient.delta(before, target.get("/metrics").text, COUNTERS)
    assert counters["plans"] == counters["executions"] == 0, counters


def test_read_counters_are_exposed_once(target: httpx.Client) -> None:
    # Read at the scrape, not counted by handlers: one sample each, no handler-side twin.
    text = target.get("/metrics").text
    for spec in (PLANS, PLAN_SECONDS, EXECUTIONS):
        samples = [line for line in text.splitlines() if line.startswith(f"{spec.metric} ")]
        assert len(samples) == 1, (spec.metric, samples)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "tables=3",
        "id=1",
        "tables=0&id=1",
        f"tables={MAX_TABLES + 1}&id=1",
        "tables=x&id=1",
        "tables=3&id=0",
        f"tables=3&id={MAX_ORDER_ID + 1}",
    ],
)
def test_out_of_bounds_is_422_without_a_statement(target: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?{query}")
        assert response.status_code == 422, (variant, query)
        assert counters["executions"] == 0, (variant, query)


@pytest.mark.parametrize("query", ["", "tables=0", f"tables={MAX_TABLES + 1}"])
def test_the_warm_route_takes_only_a_knob_value(target: httpx.Client, query: str) -> None:
    response, counters = get_counting(target, f"/prepared/warm?{query}")
    assert response.status_code == 422
    assert counters["executions"] == 0
