"""Pool: four variants return the same bytes; connections per request show the mechanism."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import psycopg
import pytest

from pairbench.harness import metricsclient, services
from pairbench.targets.pairs.pool import (
    MAX_AUTHOR_ID,
    MAX_CONNECTIONS,
    PSYCOPG_POOL_MAX_SIZE,
    PSYCOPG_POOL_MIN_SIZE,
    application_name,
    pair,
)
from pairbench.targets.registry import document

from .counting import get_counting

# The catalogue the harness reads counters with (docs/architecture.md, "What the targets describe").
COUNTERS = document()["counters"]

VARIANTS = ["asyncpg_connect", "psycopg_null_pool", "asyncpg_pool", "psycopg_pool"]
CONNECTS_PER_REQUEST = {
    "asyncpg_connect": 1,
    "psycopg_null_pool": 1,
    "asyncpg_pool": 0,
    "psycopg_pool": 0,
}
CONCURRENT_USERS = 20
# Backends exit asynchronously after the client closes: give pg_stat_activity time to catch up.
SETTLE_TIMEOUT_S = 5.0


async def _burst(base_url: str, path: str, users: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=users)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        return await asyncio.gather(*(client.get(path) for _ in range(users)))


async def _backends(dsn: str, name: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
        )
        return count
    finally:
        await conn.close()


def _settled_backends(dsn: str, name: str, expected: int) -> int:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while (count := asyncio.run(_backends(dsn, name))) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def test_two_bad_variants_and_room_for_a_connection_each() -> None:
    assert list(pair.variants) == VARIANTS
    assert [v.role for v in pair.variants.values()] == ["bad", "bad", "good", "good"]
    assert pair.counters[0] == "db_connections_opened"
    assert pair.server.max_connections >= MAX_CONNECTIONS  # beyond PostgreSQL's default 100


@pytest.mark.parametrize("author_id", [1, 17, 300])
def test_variants_are_byte_identical(target: httpx.Client, author_id: int) -> None:
    bodies = {v: target.get(f"/pool/{v}?id={author_id}") for v in VARIANTS}
    assert all(r.status_code == 200 for r in bodies.values())
    reference = bodies["asyncpg_connect"].content
    assert all(r.content == reference for r in bodies.values())
    author = bodies["asyncpg_connect"].json()
    assert author["id"] == author_id
    assert set(author) == {"id", "name", "country", "born", "book_count"}


def test_book_counts_match_the_books_table(
    target: httpx.Client, servers: services.Endpoints
) -> None:
    # Ids 1..120 include authors with no books: the LEFT JOIN must count them as 0, not drop them.
    with psycopg.connect(servers.pg_dsn) as conn:
        rows = conn.execute(
            "SELECT a.id, count(b.id) FROM pool_authors a"
            " LEFT JOIN pool_books b ON b.author_id = a.id WHERE a.id <= 120 GROUP BY a.id"
        ).fetchall()
    expected = dict(rows)
    for author_id in range(1, 121, 10):
        counted = target.get(f"/pool/psycopg_pool?id={author_id}").json()
        assert counted["book_count"] == expected[author_id]
    assert 0 in expected.values()


def test_unknown_author_is_404_everywhere(target: httpx.Client) -> None:
    bodies = {v: target.get(f"/pool/{v}?id={MAX_AUTHOR_ID}") for v in VARIANTS}
    assert all(r.status_code == 404 for r in bodies.values())
    assert len({r.content for r in bodies.values()}) == 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_one_query_and_the_connects_that_define_the_variant(
    target: httpx.Client, variant: str
) -> None:
    target.get(f"/pool/{variant}?id=1")  # warm-up: the shared pool may still be connecting
    for author_id in (2, 3):
        response, counters = get_counting(target, f"/pool/{variant}?id={author_id}")
        assert response.status_code == 200
        assert counters["queries"] == 1
        assert counters["db_connections_opened"] == CONNECTS_PER_REQUEST[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_concurrent_users_are_served(target: httpx.Client, variant: str) -> None:
    target.get(f"/pool/{variant}?id=1")
    before = target.get("/metrics").text
    responses = asyncio.run(_burst(str(target.base_url), f"/pool/{variant}?id=5", CONCURRENT_USERS))
    counters = metricsclient.delta(before, target.get("/metrics").text, COUNTERS)
    assert [r.status_code for r in responses] == [200] * CONCURRENT_USERS
    assert len({r.content for r in responses}) == 1
    assert counters["queries"] == CONCURRENT_USERS
    assert counters["db_connections_opened"] == CONCURRENT_USERS * CONNECTS_PER_REQUEST[variant]


# Huge and negative values are the contract test's (tests/test_pair_contract.py).
@pytest.mark.parametrize("query", ["id=0", f"id={MAX_AUTHOR_ID + 1}", "id=abc", "id=1.5", ""])
@pytest.mark.parametrize("variant", VARIANTS)
def test_bad_id_is_rejected_without_touching_the_database(
    target: httpx.Client, variant: str, query: str
) -> None:
    response, counters = get_counting(target, f"/pool/{variant}?{query}")
    assert response.status_code == 422
    assert counters["queries"] == 0
    assert counters["db_connections_opened"] == 0


@pytest.mark.parametrize(
    ("variant", "steady"),
    [
        ("asyncpg_connect", 0),
        ("psycopg_null_pool", 0),
        ("psycopg_pool", PSYCOPG_POOL_MIN_SIZE),
    ],
)
def test_no_connection_outlives_its_request_after_a_burst(
    target: httpx.Client, servers: services.Endpoints, variant: str, steady: int
) -> None:
    responses = asyncio.run(_burst(str(target.base_url), f"/pool/{variant}?id=9", CONCURRENT_USERS))
    assert all(r.status_code == 200 for r in responses)
    assert _settled_backends(servers.pg_dsn, application_name(variant), steady) == steady


def test_stats_report_every_pool_back_to_idle(target: httpx.Client) -> None:
    asyncio.run(_burst(str(target.base_url), "/pool/asyncpg_pool?id=3", CONCURRENT_USERS))
    asyncio.run(_burst(str(target.base_url), "/pool/psycopg_pool?id=3", CONCURRENT_USERS))
    stats = target.get("/pool/stats").json()
    shared = stats["asyncpg_pool"]
    assert shared["pool_size"] == shared["pool_max"] == shared["pool_available"]
    psycopg = stats["psycopg_pool"]
    assert psycopg["pool_min"] == PSYCOPG_POOL_MIN_SIZE
    assert psycopg["pool_max"] == PSYCOPG_POOL_MAX_SIZE
    assert psycopg["pool_size"] == psycopg["pool_available"] == PSYCOPG_POOL_MAX_SIZE
    assert psycopg["requests_waiting"] == 0
    assert psycopg["requests_num"] >= CONCURRENT_USERS
    null = stats["psycopg_null_pool"]
    assert null["pool_size"] == 0  # a null pool keeps nothing between requests
    assert null["connections_num"] >= 1


def test_the_404_is_documented_on_every_variant_with_the_error_body(
    target: httpx.Client,
) -> None:
    paths = target.get("/openapi.json").json()["paths"]
    for variant in VARIANTS:
        responses = paths[pair.path(variant)]["get"]["responses"]
        schema = responses["404"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, variant
        assert set(responses) == {"200", "404", "422"}, variant
