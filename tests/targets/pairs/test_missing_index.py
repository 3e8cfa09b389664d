"""missing_index: every variant lists the same orders from its own table; the plans, the rows and
the buffers read show which of them use an index."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from pairbench.harness import services
from pairbench.targets.pairs.missing_index import (
    BTREE_SQL,
    CLUSTERED_SQL,
    COMPOSITE_SQL,
    FUNCTION_WRAPPED_SQL,
    LOW_CARDINALITY_SQL,
    MAX_CUSTOMER,
    ORDERS_PER_CUSTOMER,
    RANGE_SQL,
    SEQ_SCAN_SQL,
    STRUCTURES,
    TABLE_ROWS,
    WRONG_ORDER_SQL,
    month_range,
    pair,
)

from .counting import get_counting

VARIANTS = list(pair.variants)
ROWS = 10_000  # the test profile's largest table
SCENARIO_QUERY = "customer=1&year=2025&month=12&status=shipped"
# Each variant's statement and the structure of the table it reads.
STATEMENTS = {
    "seq_scan": (SEQ_SCAN_SQL, "bare"),
    "function_wrapped": (FUNCTION_WRAPPED_SQL, "created"),
    "low_cardinality": (LOW_CARDINALITY_SQL, "status"),
    "wrong_order": (WRONG_ORDER_SQL, "created_customer"),
    "btree": (BTREE_SQL, "customer"),
    "range_rewrite": (RANGE_SQL, "created"),
    "composite": (COMPOSITE_SQL, "customer_created"),
    "clustered": (CLUSTERED_SQL, "customer_clustered"),
}


def _partition(structure: str, rows: int) -> str:
    return f"missing_index_{structure}_{rows}"


def _explain(dsn: str, variant: str, rows: int, customer: int = 1) -> dict[str, Any]:
    """EXPLAIN ANALYZE of `variant`'s statement for the scenario's question: the top plan node."""
    sql, _ = STATEMENTS[variant]
    start, end = month_range(2025, 12)
    args: tuple[Any, ...] = (rows, customer, "shipped", start, end)
    if "date_trunc" in sql:  # the month as one value
        args = args[:-1]
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {re.sub(r'[$][0-9]', '%s', sql)}", args
        ).fetchone()
    assert row is not None
    return dict(row[0][0]["Plan"])


def _rows_read(node: dict[str, Any]) -> int:
    """Rows a plan's scans went through: those they returned and those their filters removed."""
    own = 0
    if "Relation Name" in node:
        own = int(node["Actual Rows"]) + int(node.get("Rows Removed by Filter", 0))
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role) for v in pair.variants.values()] == [
        ("seq_scan", "bad"),
        ("function_wrapped", "bad"),
        ("low_cardinality", "bad"),
        ("wrong_order", "bad"),
        ("btree", "good"),
        ("range_rewrite", "good"),
        ("composite", "good"),
        ("clustered", "good"),
    ]


def test_every_structure_holds_the_same_rows(servers: services.Endpoints) -> None:
    digest = "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t.id)) FROM {} AS t"
    with psycopg.connect(servers.pg_dsn) as conn:
        for rows in TABLE_ROWS:
            seen = {conn.execute(digest.format(_partition(s, rows))).fetchone() for s in STRUCTURES}
            assert len(seen) == 1, rows
            ((count, _),) = seen
            assert count == (rows if rows <= ROWS else 0), rows  # past max_rows: empty
        # Ids follow created_at (an append-only table), customers have about 100 orders each.
        table = _partition("bare", ROWS)
        disorder = conn.execute(
            f"SELECT count(*) FROM (SELECT created_at < lag(created_at) OVER (ORDER BY id) AS back"
            f" FROM {table}) AS t WHERE back"
        ).fetchone()
        customers = conn.execute(f"SELECT count(DISTINCT customer_id) FROM {table}").fetchone()
    assert disorder == (0,)
    assert customers == (ROWS // ORDERS_PER_CUSTOMER,)


@pytest.mark.parametrize(
    "query",
    [
        SCENARIO_QUERY,
        "customer=7&year=2024&month=2&status=shipped",
        "customer=42&year=2025&month=6&status=pending",
        "customer=100&year=2024&month=12&status=cancelled",
        f"customer={MAX_CUSTOMER}&year=2025&month=1&status=shipped",  # no such customer here
    ],
)
def test_same_orders_from_every_variant(target: httpx.Client, query: str) -> None:
    replies = {v: target.get(f"{pair.path(v)}?rows={ROWS}&{query}").json() for v in VARIANTS}
    first = replies["seq_scan"]
    assert all(body == first for body in replies.values()), {v: len(b) for v, b in replies.items()}
    params = dict(p.split("=") for p in query.split("&"))
    start, end = month_range(int(params["year"]), int(params["month"]))
    for order in first:
        assert order["customer_id"] == int(params["customer"])
        assert order["status"] == params["status"]
        assert start <= datetime.fromisoformat(order["created_at"]) < end
    assert [o["id"] for o in first] == sorted(o["id"] for o in first)


def test_the_scenario_question_has_an_answer(target: httpx.Client) -> None:
    assert target.get(f"/missing_index/seq_scan?rows={ROWS}&{SCENARIO_QUERY}").json() != []


def test_a_table_past_the_profile_is_empty_not_an_error(target: httpx.Client) -> None:
    for variant in VARIANTS:
        reply = target.get(f"{pair.path(variant)}?rows={max(TABLE_ROWS)}&{SCENARIO_QUERY}")
        assert (reply.status_code, reply.json()) == (200, []), variant


def test_the_plans_show_which_variants_use_an_index(target: httpx.Client) -> None:
    access = {}
    for variant in VARIANTS:
        response = target.get(
            f"{pair.path(variant)}?rows={ROWS}&{SCENARIO_QUERY}",
            headers={"X-Pairbench-Explain": "1"},
        )
        assert response.status_code == 200
        (plan,) = target.get("/_pairbench/plans").json()
        (access[variant],) = plan["access"]
    # The planner pruned each statement to the partition of the size asked for.
    for variant, (_, structure) in STATEMENTS.items():
        assert access[variant].endswith(f" on {_partition(structure, ROWS)}"), access
    # No usable index: the whole table, whichever index exists.
    for variant in ("seq_scan", "function_wrapped", "low_cardinality"):
        assert access[variant].startswith("Seq Scan"), access
    for variant in ("wrong_order", "btree", "range_rewrite", "composite", "clustered"):
        assert not access[variant].startswith("Seq Scan"), access


def test_rows_read_the_whole_table_without_an_index(servers: services.Endpoints) -> None:
    read = {v: _rows_read(_explain(servers.pg_dsn, v, ROWS)) for v in VARIANTS}
    for variant in ("seq_scan", "function_wrapped", "low_cardinality"):
        assert read[variant] == ROWS, read
    # B-tree: the customer's orders; the range: the month (about 1 in 24 of the table); the
    # composite: the customer's orders in the month. The wrong order's filter runs inside the
    # index, so its heap reads are few; its cost is the month of index entries (buffers, below).
    assert read["btree"] <= 2 * ORDERS_PER_CUSTOMER, read
    assert ROWS / 48 < read["range_rewrite"] < ROWS / 12, read
    assert read["composite"] <= 20, read
    assert read["clustered"] == read["btree"], read  # the same index, the same rows


def test_buffers_grow_with_the_table_only_for_a_scan(target: httpx.Client) -> None:
    for variant in VARIANTS:  # warm: a first plan costs catalogue reads
        target.get(f"{pair.path(variant)}?rows={ROWS}&{SCENARIO_QUERY}")
    buffers = {}
    for variant in VARIANTS:
        response, counters = get_counting(
            target, f"{pair.path(variant)}?rows={ROWS}&{SCENARIO_QUERY}"
        )
        assert response.status_code == 200
        assert counters["queries"] == 1, variant
        buffers[variant] = counters["db_buffers"]
    # 10,000 rows fill 84 pages; a scan reads each (and the low-cardinality table's statement
    # a few of its index's pages more, some of the time: the planner's look at it).
    scans = [buffers[v] for v in ("seq_scan", "function_wrapped", "low_cardinality")]
    assert min(scans) >= 80 and max(scans) <= 1.2 * min(scans), buffers
    assert buffers["composite"] < 10, buffers
    assert buffers["composite"] < buffers["wrong_order"] < min(scans), buffers
    # The same B-tree and rows: the customer's orders on a page or two, not one page each.
    assert buffers["clustered"] * 5 < buffers["btree"], buffers


def test_the_clustered_table_is_stored_in_customer_order(servers: services.Endpoints) -> None:
    with psycopg.connect(servers.pg_dsn) as conn:
        correlation = dict(
            conn.execute(
                "SELECT tablename, correlation FROM pg_stats"
                " WHERE tablename = ANY(%s) AND attname = 'customer_id'",
                ([_partition("customer", ROWS), _partition("customer_clustered", ROWS)],),
            ).fetchall()
        )
    assert correlation[_partition("customer_clustered", ROWS)] > 0.99, correlation
    assert abs(correlation[_partition("customer", ROWS)]) < 0.1, correlation


def test_month_range_rolls_over_the_year() -> None:
    assert month_range(2024, 12) == (
        datetime(2024, 12, 1, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert month_range(2025, 2)[1] == datetime(2025, 3, 1, tzinfo=UTC)


def test_a_size_without_a_partition_lists_nothing(target: httpx.Client) -> None:
    for variant in VARIANTS:
        response, counters = get_counting(
            target, f"{pair.path(variant)}?rows=5000&{SCENARIO_QUERY}"
        )
        assert (response.status_code, response.json()) == (200, []), variant
        assert counters["queries"] == 1, variant


@pytest.mark.parametrize(
    "query",
    [
        "",
        f"rows=0&{SCENARIO_QUERY}",
        f"rows={max(TABLE_ROWS) + 1}&{SCENARIO_QUERY}",
        "rows=10000&customer=0&year=2025&month=12&status=shipped",
        f"rows=10000&customer={MAX_CUSTOMER + 1}&year=2025&month=12&status=shipped",
        "rows=10000&customer=1&year=2023&month=12&status=shipped",
        "rows=10000&customer=1&year=2025&month=13&status=shipped",
        "rows=10000&customer=1&year=2025&month=12&status=lost",
    ],
)
def test_out_of_bounds_is_422_without_a_statement(target: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?{query}")
        assert response.status_code == 422, (variant, query)
        assert counters["queries"] == 0, (variant, query)
