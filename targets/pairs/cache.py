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

Every variant serves the same bytes: the summary is serialized once, by `encode` (in
_cache_data.py, with the summary's SQL and the seed data), and a cached entry is those bytes.
Each cached variant keeps its own key namespace, so in interleaved rounds one variant never
warms the other's cache.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import date, datetime
from typing import Annotated

import asyncpg
import redis.asyncio as aioredis
from fastapi import HTTPException, Query, Response

from ..counters import PERCENT, per_sum_of
from ..deps import AppMetrics, Pool, RedisClient
from ..metrics import Metrics
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference, Shows
from ._cache_data import (
    CUSTOMERS_DDL,
    ORDERS_DDL,
    ORDERS_INDEXES,
    RECENT_ORDERS,
    STATUSES,
    SUMMARY_SQL,
    TOP_PRODUCTS,
    customers,
    encode,
    orders,
)

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


class Customer(Body):
    id: int
    name: str
    email: str
    country: str
    signed_up: date


class Month(Body):
    month: str  # YYYY-MM, in UTC
    orders: int
    spent_cents: int


class Product(Body):
    sku: str
    quantity: int
    spent_cents: int


class Summary(Body):
    """A customer's order summary (encode's output); the statistics are null with no orders."""

    customer: Customer
    orders: int
    spent_cents: int
    average_cents: int
    median_cents: int | None
    largest_cents: int | None
    first_order_at: datetime | None
    last_order_at: datetime | None
    by_status: dict[str, int]
    top_month: Month | None
    active_months: int
    median_days_between_orders: float | None
    items_bought: int
    distinct_products: int
    top_products: list[Product]
    recent_order_ids: list[int]


pair = Pair(
    name="cache",
    title="Uncached vs cache-aside",
    summary="A customer's order summary: recomputed per read vs cached in Redis with a TTL.",
    knob=Knob("skew", "key skew (Zipf exponent)", "", log_scale=False),
    sizes={
        "test": {"customers": 200, "orders_per_customer": 50},
        "quick": {"customers": 2000, "orders_per_customer": 100},
        "standard": {"customers": 10_000, "orders_per_customer": 100},
        "talk": {"customers": 10_000, "orders_per_customer": 100},
    },
    counters=["cache_hits", "queries", "redis_commands"],
    body=Summary,
    reference=Reference(
        figure="expected latency ≈ get + (1 - hit ratio) · (db + set)",
        source="the cache-aside cost model",
    ),
)
# The lesson's counters: the hit ratio is hits / (hits + misses), shown as a percentage.
HITS = pair.counter(
    "cache_hits",
    "Cache hits",
    label="cache hit ratio",
    unit="%",
    per=per_sum_of(["cache_hits", "cache_misses"]),
    scale=PERCENT,
)
MISSES = pair.counter(
    "cache_misses", "Cache misses (recomputations)", label="cache misses", unit="misses"
)

NOT_FOUND = {404: "no customer with that id"}
CustomerId = Annotated[int, Query(ge=1, le=MAX_CUSTOMER_ID, description="customer id")]


@pair.variant("bad", responses=NOT_FOUND)
async def uncached(pool: Pool, customer: CustomerId) -> Response:
    """Uncached: every read recomputes the summary in Postgres."""
    return _json(await _summary(pool, customer))


@pair.variant("good", responses=NOT_FOUND)
async def cache_aside(
    pool: Pool, redis: RedisClient, metrics: AppMetrics, customer: CustomerId
) -> Response:
    """Cache-aside: Redis GET; on a miss compute, then SET with a jittered TTL."""
    key = cache_key("cache_aside", customer)
    cached = await redis.get(key)
    if cached is not None:
        metrics.inc(HITS)
        return _json(cached)
    metrics.inc(MISSES)
    return _json(await _fill(redis, key, pool, customer))


@pair.variant("good", responses=NOT_FOUND)
async def single_flight(
    pool: Pool, redis: RedisClient, metrics: AppMetrics, customer: CustomerId
) -> Response:
    """Single flight: cache-aside where, at a miss, one request recomputes and the others wait.

    cache_misses counts recomputations: a request that waited and got the holder's result is a
    hit.
    """
    key = cache_key("single_flight", customer)
    cached = await redis.get(key)
    if cached is not None:
        metrics.inc(HITS)
        return _json(cached)
    lock, token = f"{key}:lock", uuid.uuid4().hex
    if await redis.set(lock, token, nx=True, px=LOCK_TTL_MS):
        try:
            # Check again: the previous holder may have filled the key between our GET and SET.
            cached = await redis.get(key)
            if cached is not None:
                metrics.inc(HITS)
                return _json(cached)
            metrics.inc(MISSES)
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
            metrics.inc(HITS)
            return cached
        if holder is None:  # the holder finished without a value (a 404) or failed
            break
    metrics.inc(MISSES)
    return await _fill(redis, key, pool, customer)


async def _summary(pool: asyncpg.Pool, customer: int) -> bytes:
    """Compute the summary from Postgres (one query); 404 if there is no such customer."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            SUMMARY_SQL, customer, list(STATUSES), RECENT_ORDERS, TOP_PRODUCTS
        )
    if row is None:
        raise HTTPException(status_code=404, detail=f"customer {customer} not found")
    return encode(row)


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


# Seed data (rows, DDL and the summary's SQL are in _cache_data.py).
pair.table("customers", CUSTOMERS_DDL)(customers)
pair.table("orders", ORDERS_DDL, indexes=ORDERS_INDEXES)(orders)


# The micro benchmark (docs/architecture.md, "The micro suite"): the summary recomputed against
# the cache read path (a hit once the first call filled it), no HTTP, for one customer. The knob
# (key skew) is the load's, not a call's.
MICRO_CUSTOMER = 1


@pair.micro("uncached", knob=None)
async def _micro_uncached(on: MicroServers) -> bytes:
    return bytes((await uncached(on.pool, MICRO_CUSTOMER)).body)


@pair.micro("cache_aside", knob=None)
async def _micro_cache_aside(on: MicroServers) -> bytes:
    response = await cache_aside(on.pool, on.redis, on.metrics, MICRO_CUSTOMER)
    return bytes(response.body)


# The workshop exercise (docs/architecture.md, "Exercises"): cache-aside in front of the query.
pair.exercise(
    reference="cache_aside",
    task="""Return the same summary as `uncached` (a customer's aggregates over `orders`;
    404 when there is no such customer), but serve repeated reads from Redis: GET a key of
    your own for the customer, and only on a miss compute the summary and SET it with a
    TTL. Count each hit and miss with metrics.inc(HITS) / metrics.inc(MISSES).""",
    knob=1.5,
    min_ratio=1.1,
    shows=[
        Shows("cache_hits", "most reads still go to the database: read Redis first", at_least=50)
    ],
    order=30,  # the workshop's order (docs/workshop.md)
)
