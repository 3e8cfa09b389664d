"""Cache: the three variants serve the same bytes; hits skip the database; keys expire; and
single flight turns a stampede at a cold key into one recomputation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import asyncpg
import httpx
import psycopg
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from pairbench.harness import metricsclient, services
from pairbench.targets.pairs._cache_data import (
    RECENT_ORDERS,
    STATUSES,
    SUMMARY_SQL,
    TOP_PRODUCTS,
    encode,
)
from pairbench.targets.pairs.cache import (
    CACHE_TTL_JITTER_S,
    CACHE_TTL_S,
    KEY_PREFIX,
    MAX_CUSTOMER_ID,
    cache_key,
    pair,
)
from pairbench.targets.registry import document

from .counting import get_counting

# The catalogue the harness reads counters with (docs/architecture.md, "What the targets describe").
COUNTERS = document()["counters"]

VARIANTS = ["uncached", "cache_aside", "single_flight"]
CACHED = ["cache_aside", "single_flight"]
MISSING_CUSTOMER = 999_999  # a valid id that no dataset profile reaches
BURST = 20
TTL_SLACK_MS = 2_000  # time between the SET and the PTTL that reads it, on a busy machine


@pytest.fixture(scope="module")
def redis_client(servers: services.Endpoints) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(servers.redis_url)
    yield client
    client.close()


def _our_keys(client: redis.Redis) -> list[bytes]:
    return list(client.scan_iter(match=f"{KEY_PREFIX}*", count=1000))


@pytest.fixture(autouse=True)
def cold_cache(redis_client: redis.Redis) -> None:
    """Every test starts cold. Only this pair's namespace is deleted, never FLUSHALL."""
    keys = _our_keys(redis_client)
    if keys:
        redis_client.delete(*keys)


def test_the_hit_ratio_is_the_headline() -> None:
    assert list(pair.variants) == VARIANTS
    assert pair.counters[0] == "cache_hits"
    assert pair.declared["cache_hits"].per == ("cache_hits", "cache_misses")


@pytest.mark.parametrize("customer", [1, 2, 77, 200])
def test_same_bytes_from_the_database_and_from_the_cache(
    target: httpx.Client, servers: services.Endpoints, customer: int
) -> None:
    responses = [target.get(f"/cache/{v}?customer={customer}") for v in VARIANTS for _ in "12"]
    assert all(r.status_code == 200 for r in responses)
    assert all(r.headers["content-type"] == "application/json" for r in responses)
    assert len({r.content for r in responses}) == 1  # misses and hits alike
    summary = responses[0].json()
    with psycopg.connect(servers.pg_dsn) as conn:
        row = conn.execute(
            "SELECT count(*), sum(amount_cents) FROM orders WHERE customer_id = %s", (customer,)
        ).fetchone()
    assert row is not None
    assert summary["customer"]["id"] == customer
    assert (summary["orders"], summary["spent_cents"]) == (row[0], row[1])
    assert sum(summary["by_status"].values()) == summary["orders"]
    assert list(summary["by_status"]) == list(STATUSES)
    assert len(summary["recent_order_ids"]) == RECENT_ORDERS
    assert len(summary["top_products"]) == TOP_PRODUCTS


@pytest.mark.parametrize("variant", CACHED)
def test_a_miss_queries_once_then_a_hit_queries_nothing(target: httpx.Client, variant: str) -> None:
    path = f"/cache/{variant}?customer=33"
    first, miss = get_counting(target, path)
    second, hit = get_counting(target, path)
    assert first.status_code == second.status_code == 200
    assert (miss["queries"], miss["cache_misses"], miss["cache_hits"]) == (1, 1, 0)
    assert (hit["queries"], hit["cache_misses"], hit["cache_hits"]) == (0, 0, 1)


def test_a_hit_is_one_redis_command(target: httpx.Client) -> None:
    path = "/cache/cache_aside?customer=41"
    target.get(path)  # fill: the next read is a hit
    before = target.get("/metrics").text
    response = target.get(path)
    after = target.get("/metrics").text
    assert response.status_code == 200
    # One GET; the scrapes' own INFO commands are not counted.
    assert _redis_commands(after) - _redis_commands(before) == 1


def _redis_commands(text: str) -> float:
    (value,) = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "pairbench_redis_commands_total"
    ]
    return value


def test_uncached_queries_every_time(target: httpx.Client) -> None:
    for _ in range(3):
        response, counters = get_counting(target, "/cache/uncached?customer=33")
        assert response.status_code == 200
        assert counters["queries"] == 1
        assert counters["cache_hits"] == counters["cache_misses"] == 0
        assert counters["db_connections_opened"] == 0


def test_every_key_written_is_namespaced_and_expires(
    target: httpx.Client, redis_client: redis.Redis
) -> None:
    customers = range(1, 21)
    bodies = {}
    for variant in VARIANTS:
        for customer in customers:
            bodies[cache_key(variant, customer)] = target.get(
                f"/cache/{variant}?customer={customer}"
            ).content
    keys = {k.decode() for k in _our_keys(redis_client)}
    # Exactly one entry per cached variant and customer: no lock left behind, nothing uncached.
    assert keys == {cache_key(v, c) for v in CACHED for c in customers}
    assert cache_key("cache_aside", 7) == "pairbench:cache:v1:cache_aside:customer:7"
    ttls = [redis_client.pttl(k) for k in keys]
    assert all(
        CACHE_TTL_S * 1000 - TTL_SLACK_MS < t <= (CACHE_TTL_S + CACHE_TTL_JITTER_S) * 1000
        for t in ttls
    ), ttls
    assert max(ttls) - min(ttls) > 50  # jittered: keys written together expire apart
    assert all(redis_client.get(k) == bodies[k] for k in keys)  # the bytes served are stored


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
    body = await reader.readexactly(int(headers[b"content-length"]))
    return int(head.split(b" ", 2)[1]), body


async def _burst(base_url: str, path: str, n: int) -> list[tuple[int, bytes]]:
    """n requests written back to back on n open connections: (status, body) for each.

    Raw asyncio streams, not httpx.AsyncClient: httpx spends milliseconds of client CPU per
    request here, which spreads a burst of 20 over ~60 ms, far thinner than the ~1 ms recompute
    it must overlap, so cache-aside's stampede showed or not by luck. Written in one loop with no
    await in between, the requests arrive within microseconds, as they do at a hot key's expiry.
    """
    url = httpx.URL(base_url)
    assert url.host and url.port
    streams = [await asyncio.open_connection(url.host, url.port) for _ in range(n)]
    try:
        # A first round trip on each connection: a connection the kernel has completed but the
        # server has not accepted yet would hold its request back until the burst is over.
        for _, writer in streams:
            writer.write(_request("/healthz", url.host))
        assert all(s == 200 for s, _ in await asyncio.gather(*(_read_reply(r) for r, _ in streams)))
        for _, writer in streams:
            writer.write(_request(path, url.host))
        return await asyncio.gather(*(_read_reply(reader) for reader, _ in streams))
    finally:
        for _, writer in streams:
            writer.close()


def _request(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def _burst_counting(
    target: httpx.Client, path: str
) -> tuple[list[tuple[int, bytes]], dict[str, float]]:
    before = target.get("/metrics").text
    responses = asyncio.run(_burst(str(target.base_url), path, BURST))
    return responses, metricsclient.delta(before, target.get("/metrics").text, COUNTERS)


def test_single_flight_recomputes_a_cold_key_once(target: httpx.Client) -> None:
    responses, counters = _burst_counting(target, "/cache/single_flight?customer=150")
    assert [status for status, _ in responses] == [200] * BURST
    assert len({body for _, body in responses}) == 1
    assert counters["queries"] == 1
    assert (counters["cache_misses"], counters["cache_hits"]) == (1, BURST - 1)


def test_cache_aside_stampedes_on_a_cold_key(target: httpx.Client) -> None:
    responses, counters = _burst_counting(target, "/cache/cache_aside?customer=150")
    assert [status for status, _ in responses] == [200] * BURST
    assert len({body for _, body in responses}) == 1
    assert counters["queries"] > 1  # the stampede single flight exists to prevent
    assert counters["cache_misses"] == counters["queries"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_missing_customer_is_404_and_not_cached(
    target: httpx.Client, redis_client: redis.Redis, variant: str
) -> None:
    response = target.get(f"/cache/{variant}?customer={MISSING_CUSTOMER}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"customer {MISSING_CUSTOMER} not found"}
    assert _our_keys(redis_client) == []  # neither a value nor a lock left behind


def test_a_burst_for_a_missing_customer_is_404_for_all(target: httpx.Client) -> None:
    # The waiters see the lock vanish without a value and stop waiting: no 500, no hang.
    responses, _ = _burst_counting(target, f"/cache/single_flight?customer={MISSING_CUSTOMER}")
    assert [status for status, _ in responses] == [404] * BURST


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "query", ["customer=0", f"customer={MAX_CUSTOMER_ID + 1}", "customer=x", ""]
)
def test_bad_ids_are_422_without_touching_anything(
    target: httpx.Client, variant: str, query: str
) -> None:
    response, counters = get_counting(target, f"/cache/{variant}?{query}")
    assert response.status_code == 422
    assert counters["queries"] == 0
    assert counters["cache_hits"] == counters["cache_misses"] == 0


async def _summary_of_a_new_customer(dsn: str) -> bytes:
    conn = await asyncpg.connect(dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        try:  # rolled back: the session's dataset stays as seeded
            await conn.execute(
                "INSERT INTO customers VALUES ($1, 'New Customer', 'new@example.com', 'FR',"
                " '2025-06-01')",
                MISSING_CUSTOMER,
            )
            row = await conn.fetchrow(
                SUMMARY_SQL, MISSING_CUSTOMER, list(STATUSES), RECENT_ORDERS, TOP_PRODUCTS
            )
            return encode(row)
        finally:
            await tx.rollback()
    finally:
        await conn.close()


def test_a_customer_without_orders_summarises_to_zeros(servers: services.Endpoints) -> None:
    summary = json.loads(asyncio.run(_summary_of_a_new_customer(servers.pg_dsn)))
    assert summary["customer"]["id"] == MISSING_CUSTOMER
    assert summary["orders"] == summary["spent_cents"] == summary["items_bought"] == 0
    assert summary["by_status"] == dict.fromkeys(STATUSES, 0)
    assert summary["top_month"] is None and summary["last_order_at"] is None
    assert summary["top_products"] == [] and summary["recent_order_ids"] == []


def test_the_404_is_documented_on_every_variant_with_the_error_body(
    target: httpx.Client,
) -> None:
    paths = target.get("/openapi.json").json()["paths"]
    for variant in VARIANTS:
        responses = paths[pair.path(variant)]["get"]["responses"]
        schema = responses["404"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}, variant
        assert set(responses) == {"200", "404", "422"}, variant
        body = responses["200"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/Summary"}, variant
