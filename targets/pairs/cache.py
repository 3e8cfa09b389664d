"""Uncached vs cache-aside: a customer's order summary, read again and again.

The summary aggregates every order of one customer (totals, per-status counts, best month,
products ranked from the orders' lines, recent orders): about a millisecond of real database
work at 100 orders, ten times a primary-key lookup, the kind of result worth caching. The
lookup itself would not be: Postgres answers it from shared buffers in tens of microseconds,
about the cost of the Redis round trip that would replace it, so a cache would add a hop and a
staleness window for nothing.

Cache-aside (the application, not the database, fills the cache on a miss) turns a hit into one
Redis GET; its hit ratio, and so its gain, grows with key skew: the load draws customer ids from
a Zipf distribution of exponent `skew`, so a few hot customers get most of the reads. At expiry,
though, every concurrent reader of a hot key misses at once and all of them recompute (a
stampede); the single-flight variant lets one recompute while the rest wait for its result.

Every variant serves the same bytes: the summary is serialized once, by `_encode`, and a cached
entry is those bytes. Each cached variant keeps its own key namespace, so in interleaved rounds
one variant never warms the other's cache.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import HTTPException, Query, Response

from ..data import COUNTRIES, WORDS, Size, Table, register_table
from ..deps import AppMetrics, Pool, RedisClient
from ..metrics import Metrics
from ..registry import Knob, Pair, register

MAX_CUSTOMER_ID = 2**31 - 1  # customers.id is an integer; beyond it Postgres would raise

# Short on purpose: within a benchmark round keys expire and are refilled, so the hit ratio
# depends on how often a key is read again, which is what the skew knob changes. In production
# the TTL is how stale a summary may get. Always a TTL: an entry that never expires is wrong
# forever once the database changes.
CACHE_TTL_S = 5.0
# Random extra life per write, so keys filled together (a warm-up, a deploy) do not all expire
# in the same instant and stampede the database together.
CACHE_TTL_JITTER_S = 1.0
KEY_PREFIX = "pairbench:cache:v1:"  # v1: bump when the summary's shape changes

# Single flight: the lock outlives any sane recompute (a crashed holder frees it after this),
# waiters poll for the holder's result, and give up waiting (recomputing themselves) after
# SINGLE_FLIGHT_WAIT_S rather than hang on a holder that died.
LOCK_TTL_MS = 1_000
POLL_INTERVAL_S = 0.002
SINGLE_FLIGHT_WAIT_S = 0.5
# Delete the lock only if it is still ours: a holder that overran LOCK_TTL_MS must not free the
# lock a newer holder took.
RELEASE_LOCK_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""

# Seed data: orders arrive over three years, interleaved across customers (as they would), so
# one customer's orders lie on many heap pages. Each order keeps its lines as JSON (a snapshot
# of what was bought, as shops store them), which the summary expands to rank products.
ORDERS_START = datetime(2023, 1, 1, tzinfo=UTC)
ORDERS_SPAN_S = 3 * 365 * 86_400
STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")
STATUS_CUM_WEIGHTS = tuple(itertools.accumulate((5, 10, 10, 65, 7, 3)))  # mostly delivered
PRODUCTS = 400
UNIT_CENTS = (199, 9_999)
LINES_PER_ORDER = (1, 6)
QUANTITY = (1, 4)
RECENT_ORDERS = 5
TOP_PRODUCTS = 3

pair = register(
    Pair(
        name="cache",
        title="Uncached vs cache-aside",
        summary="A customer's order summary: recomputed per read vs cached in Redis with a TTL.",
        knob=Knob("skew", "key skew (Zipf exponent)", "", log_scale=False),
    )
)


def _customers(size: Size, rng: random.Random) -> Iterator[tuple[int, str, str, str, date]]:
    for customer_id in range(1, size.get("customers", 0) + 1):
        first, last = rng.choice(WORDS).capitalize(), rng.choice(WORDS).capitalize()
        email = f"{first.lower()}.{last.lower()}.{customer_id}@example.com"
        signed_up = date(2020, 1, 1) + timedelta(days=rng.randint(0, 3 * 365))
        yield customer_id, f"{first} {last}", email, rng.choice(COUNTRIES), signed_up


def _orders(size: Size, rng: random.Random) -> Iterator[tuple[int, int, datetime, str, int, str]]:
    catalogue = [
        (f"{rng.choice(WORDS).upper()}-{n:04d}", rng.randint(*UNIT_CENTS)) for n in range(PRODUCTS)
    ]
    customers = size.get("customers", 0)
    total = customers * size.get("orders_per_customer", 0)
    mean_gap_s = ORDERS_SPAN_S / max(total, 1)
    clock = 0.0
    for order_id in range(1, total + 1):
        clock += rng.uniform(0, 2 * mean_gap_s)
        lines = [
            (sku, rng.randint(*QUANTITY), unit)
            for sku, unit in rng.choices(catalogue, k=rng.randint(*LINES_PER_ORDER))
        ]
        yield (
            order_id,
            rng.randint(1, customers),
            ORDERS_START + timedelta(seconds=int(clock)),
            rng.choices(STATUSES, cum_weights=STATUS_CUM_WEIGHTS)[0],
            sum(qty * unit for _, qty, unit in lines),
            # Formatted by hand, 3x faster than json.dumps over a million orders; safe because a
            # sku is letters, digits and a dash: nothing to escape.
            "["
            + ",".join(
                f'{{"sku":"{sku}","qty":{qty},"unit_cents":{unit}}}' for sku, qty, unit in lines
            )
            + "]",
        )


register_table(
    Table(
        "customers",
        """CREATE TABLE customers (
        id        integer PRIMARY KEY,
        name      text    NOT NULL,
        email     text    NOT NULL,
        country   text    NOT NULL,
        signed_up date    NOT NULL
    )""",
        _customers,
    )
)
register_table(
    Table(
        "orders",
        """CREATE TABLE orders (
        id           bigint      PRIMARY KEY,
        customer_id  integer     NOT NULL,
        created_at   timestamptz NOT NULL,
        status       text        NOT NULL,
        amount_cents integer     NOT NULL,
        lines        jsonb       NOT NULL
    )""",
        _orders,
        # The foreign-key index every schema has: the summary reads one customer's orders, and
        # without it each read would scan the whole table (that is the missing-index pair's
        # lesson, not this one's). Not covering: the heap visits are part of what a cache saves.
        # The foreign key is added after COPY too: one validating join instead of a trigger-fired
        # lookup per loaded row.
        indexes="CREATE INDEX orders_customer_id_idx ON orders (customer_id);"
        " ALTER TABLE orders ADD CONSTRAINT orders_customer_id_fkey"
        " FOREIGN KEY (customer_id) REFERENCES customers (id)",
    )
)

# One round trip: a missing customer comes back as no row (-> 404), one without orders as zeros
# and nulls. Months are cut in UTC so the answer does not depend on the server's time zone.
# Every tie is broken explicitly (month, sku, id), so the same data always gives the same bytes.
SUMMARY_SQL = """
WITH mine AS MATERIALIZED (
    SELECT id, created_at, status, amount_cents, lines FROM orders WHERE customer_id = $1
), months AS (
    SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
           count(*) AS orders, sum(amount_cents) AS spent_cents
    FROM mine GROUP BY 1
), products AS (
    SELECT l.sku, sum(l.qty) AS qty, sum(l.qty * l.unit_cents) AS spent_cents
    FROM mine CROSS JOIN LATERAL jsonb_to_recordset(mine.lines)
        AS l(sku text, qty integer, unit_cents integer)
    GROUP BY l.sku
), gaps AS (
    SELECT created_at - lag(created_at) OVER (ORDER BY created_at, id) AS gap FROM mine
), top_products AS (
    SELECT sku, qty, spent_cents FROM products ORDER BY qty DESC, sku LIMIT $4
)
SELECT c.id, c.name, c.email, c.country, c.signed_up,
       t.orders, t.spent_cents, t.average_cents, t.median_cents, t.largest_cents,
       t.first_order_at, t.last_order_at,
       (SELECT array_agg((SELECT count(*) FROM mine WHERE mine.status = u.status) ORDER BY u.ord)
        FROM unnest($2::text[]) WITH ORDINALITY AS u(status, ord)) AS status_counts,
       top.month AS top_month, top.orders AS top_month_orders,
       top.spent_cents AS top_month_spent_cents,
       (SELECT count(*) FROM months) AS active_months,
       (SELECT round((extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY gap))
                      / 86400)::numeric, 2)::float8
        FROM gaps) AS median_days_between_orders,
       (SELECT count(*) FROM products) AS distinct_products,
       (SELECT coalesce(sum(qty), 0)::bigint FROM products) AS items_bought,
       (SELECT array_agg(sku ORDER BY qty DESC, sku) FROM top_products) AS top_skus,
       (SELECT array_agg(qty ORDER BY qty DESC, sku) FROM top_products) AS top_qtys,
       (SELECT array_agg(spent_cents ORDER BY qty DESC, sku) FROM top_products) AS top_spent,
       (SELECT array_agg(r.id ORDER BY r.created_at DESC, r.id DESC)
        FROM (SELECT id, created_at FROM mine ORDER BY created_at DESC, id DESC LIMIT $3) AS r)
           AS recent_order_ids
FROM customers AS c
CROSS JOIN LATERAL (
    SELECT count(*) AS orders,
           coalesce(sum(amount_cents), 0) AS spent_cents,
           coalesce(round(avg(amount_cents)), 0)::bigint AS average_cents,
           percentile_disc(0.5) WITHIN GROUP (ORDER BY amount_cents) AS median_cents,
           max(amount_cents) AS largest_cents,
           min(created_at) AS first_order_at,
           max(created_at) AS last_order_at
    FROM mine
) AS t
LEFT JOIN LATERAL (
    SELECT month, orders, spent_cents FROM months ORDER BY spent_cents DESC, month DESC LIMIT 1
) AS top ON true
WHERE c.id = $1
"""

CustomerId = Annotated[int, Query(ge=1, le=MAX_CUSTOMER_ID, description="customer id")]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _encode(row: Any) -> bytes:
    """The one serializer: the uncached body and every cached entry are these bytes."""
    summary = {
        "customer": {
            "id": row["id"],
            "name": row["name"],
            "email": row["email"],
            "country": row["country"],
            "signed_up": row["signed_up"].isoformat(),
        },
        "orders": row["orders"],
        "spent_cents": row["spent_cents"],
        "average_cents": row["average_cents"],
        "median_cents": row["median_cents"],
        "largest_cents": row["largest_cents"],
        "first_order_at": _iso(row["first_order_at"]),
        "last_order_at": _iso(row["last_order_at"]),
        "by_status": dict(zip(STATUSES, row["status_counts"], strict=True)),
        "top_month": None
        if row["top_month"] is None
        else {
            "month": row["top_month"],
            "orders": row["top_month_orders"],
            "spent_cents": row["top_month_spent_cents"],
        },
        "active_months": row["active_months"],
        "median_days_between_orders": row["median_days_between_orders"],
        "items_bought": row["items_bought"],
        "distinct_products": row["distinct_products"],
        "top_products": [
            {"sku": sku, "quantity": qty, "spent_cents": spent}
            for sku, qty, spent in zip(
                row["top_skus"] or [], row["top_qtys"] or [], row["top_spent"] or [], strict=True
            )
        ],
        "recent_order_ids": row["recent_order_ids"] or [],
    }
    return json.dumps(summary, separators=(",", ":")).encode()


async def _summary(pool: asyncpg.Pool, customer: int) -> bytes:
    """Compute the summary from Postgres (one query); 404 if there is no such customer."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            SUMMARY_SQL, customer, list(STATUSES), RECENT_ORDERS, TOP_PRODUCTS
        )
    if row is None:
        raise HTTPException(status_code=404, detail=f"customer {customer} not found")
    return _encode(row)


def _json(body: bytes | str) -> Response:
    # str only in the type: the app's Redis client does not decode, so a hit is the bytes stored.
    return Response(body, media_type="application/json")


def cache_key(variant: str, customer: int) -> str:
    """Where `variant` caches a customer's summary (namespaced, versioned)."""
    return f"{KEY_PREFIX}{variant}:customer:{customer}"


def _ttl_ms() -> int:
    return round((CACHE_TTL_S + random.uniform(0, CACHE_TTL_JITTER_S)) * 1000)


async def _fill(redis: aioredis.Redis, key: str, pool: asyncpg.Pool, customer: int) -> bytes:
    body = await _summary(pool, customer)
    await redis.set(key, body, px=_ttl_ms())
    return body


@pair.variant("bad")
async def uncached(pool: Pool, customer: CustomerId) -> Response:
    """Uncached: every read recomputes the summary in Postgres."""
    return _json(await _summary(pool, customer))


@pair.variant("good")
async def cache_aside(
    pool: Pool, redis: RedisClient, metrics: AppMetrics, customer: CustomerId
) -> Response:
    """Cache-aside: Redis GET; on a miss compute, then SET with a jittered TTL."""
    key = cache_key("cache_aside", customer)
    cached = await redis.get(key)
    if cached is not None:
        metrics.cache_hits.inc()
        return _json(cached)
    metrics.cache_misses.inc()
    return _json(await _fill(redis, key, pool, customer))


@pair.variant("good")
async def single_flight(
    pool: Pool, redis: RedisClient, metrics: AppMetrics, customer: CustomerId
) -> Response:
    """Single flight: cache-aside where, at a miss, one request recomputes and the others wait.

    cache_misses counts recomputations (Metrics has no counter of its own for them): a request
    that waited and got the holder's result is a hit.
    """
    key = cache_key("single_flight", customer)
    cached = await redis.get(key)
    if cached is not None:
        metrics.cache_hits.inc()
        return _json(cached)
    lock, token = f"{key}:lock", uuid.uuid4().hex
    if await redis.set(lock, token, nx=True, px=LOCK_TTL_MS):
        try:
            # Check again: the previous holder may have filled the key between our GET and SET.
            cached = await redis.get(key)
            if cached is not None:
                metrics.cache_hits.inc()
                return _json(cached)
            metrics.cache_misses.inc()
            return _json(await _fill(redis, key, pool, customer))
        finally:
            # In finally: a 404 or an error must free the lock now, not after LOCK_TTL_MS.
            await redis.eval(RELEASE_LOCK_LUA, 1, lock, token)
    return _json(await _wait_for_holder(redis, metrics, key, lock, pool, customer))


async def _wait_for_holder(
    redis: aioredis.Redis,
    metrics: Metrics,
    key: str,
    lock: str,
    pool: asyncpg.Pool,
    customer: int,
) -> bytes | str:
    """Poll for the lock holder's result; recompute only if it is gone without one."""
    deadline = asyncio.get_running_loop().time() + SINGLE_FLIGHT_WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(POLL_INTERVAL_S)
        # One round trip for both: the value, and whether anyone is still computing it.
        cached, holder = await redis.mget(key, lock)
        if cached is not None:
            metrics.cache_hits.inc()
            return cached
        if holder is None:  # the holder finished without a value (a 404) or failed
            break
    metrics.cache_misses.inc()
    return await _fill(redis, key, pool, customer)
