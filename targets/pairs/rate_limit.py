"""An expensive endpoint with no limit vs a limit per client in Redis: one abuser, everyone else.

The endpoint is a monthly sales report: one aggregate over every order, a few milliseconds of
PostgreSQL work per request. One client (an `X-Client: abuser` script) calls it at a rate that
rises with the knob. Without a limit every call runs the query, and the database, the pool and
the event loop it shares with everyone else fill up: the bystander, a well-behaved client reading
one order by its key, waits behind the abuser's reports. With the limit, each client (its
`X-Client` header, else its address) may run 20 reports a second; past that the answer is a
429 with Retry-After, decided by one Redis script before any SQL runs, so the abuser's excess
costs a Redis round trip instead of a query, and nobody else pays for it.

The limiter is the `limits` library's, on its async Redis storage (redis-py's client), with the
sliding window counter strategy: two counters per client (this window and the last one), the
last weighted by how much of it still overlaps the sliding window, checked and incremented in
one Lua script (one round trip). Against the alternatives it offers: a fixed window lets a
client send twice the limit across a window boundary (the end of one, the start of the next);
a moving window is exact but keeps one timestamp per request in a list of up to the limit per
client, and walks it on each hit. The sliding counter's error (it assumes the last window's
requests were spread evenly) errs by a fraction of one window's count, which a limit meant to
stop an abuser at many times the limit does not notice.

The limiter's keys live in a Redis logical database of the pair's own (the app's plus
LIMITS_DATABASE_OFFSET) under KEY_PREFIX, so `reset` (before every verification request and
every trial) empties it without touching any other pair's keys: every trial starts with every
client's allowance whole. A client at many times the limit then spends its whole allowance in
the first moments of the first window and waits out the rest; from the second window on, the
weighted count lets it in at the limit's pace (the scenario's trial warm-up covers that first
window, so the measured part sees the steady state).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from ..counters import PERCENT
from ..data import Size
from ..deps import AppMetrics, Pool
from ..metrics import Metrics
from ..openapi import Body
from ..redisdb import own_database
from ..registry import Knob, Pair, Shows

LIMIT_PER_WINDOW = 20  # reports a client may run per window: a dashboard refreshing often
WINDOW_SECONDS = 1
LIMITED_STATUS = 429
LIMITS_DATABASE_OFFSET = 9  # the app uses database 0 (the gate's baseline 1, the micro suite 2)
KEY_PREFIX = "pairbench:rate_limit:v1"  # v1: bump when the limit's key changes shape
CLIENT_HEADER = "X-Client"
MAX_CLIENT_CHARS = 64  # bounded: the client's name becomes a Redis key
CLIENT_PATTERN = r"^[A-Za-z0-9_.-]+$"
FIRST_DAY = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 730  # two years of orders: 24 months in the report
MAX_TOTAL_CENTS = 50_000


class Month(Body):
    month: str
    order_count: int
    revenue_cents: int


class Report(Body):
    """Orders and revenue per month, over every order."""

    months: list[Month]


class Order(Body):
    id: int
    customer_id: int
    placed_at: str
    total_cents: int


pair = Pair(
    name="rate_limit",
    title="No limit vs a limit per client in Redis",
    summary="An abuser calls an expensive report ever faster: no limit, or 429 past a limit.",
    knob=Knob("rate", "the abusive client's requests per second", "req/s"),
    sizes={
        "test": {"orders": 5_000},
        "quick": {"orders": 20_000},
        "standard": {"orders": 20_000},
        "talk": {"orders": 20_000},
    },
    # The mechanism: the limited abuser's excess runs no report (reports per request fall by
    # the 429 share); the limiter costs a Redis script per request instead (Redis counts the
    # commands the script runs, about five, in redis_commands). `queries` also counts the
    # bystander's, a statement each.
    counters=["reports", "limited", "queries", "redis_commands"],
    body=Report,
)
REPORTS = pair.counter(
    "reports",
    "Report queries run (the expensive work a limit saves)",
    label="reports run",
    unit="reports",
)
LIMITED = pair.counter(
    "limited",
    "Requests answered 429 Too Many Requests by the limiter",
    label="429 share",
    unit="%",
    scale=PERCENT,
)
LIMIT = RateLimitItemPerSecond(LIMIT_PER_WINDOW, WINDOW_SECONDS)

REPORT_SQL = """
    SELECT to_char(date_trunc('month', placed_at), 'YYYY-MM') AS month,
           count(*) AS order_count,
           sum(total_cents) AS revenue_cents
    FROM rate_limit_orders
    GROUP BY 1
    ORDER BY 1"""
ORDER_SQL = "SELECT id, customer_id, placed_at, total_cents FROM rate_limit_orders WHERE id = $1"

Client = Annotated[
    str | None,
    Header(
        alias=CLIENT_HEADER,
        max_length=MAX_CLIENT_CHARS,
        pattern=CLIENT_PATTERN,
        description="who is calling (the limit is per client; absent: the caller's address)",
    ),
]
# Not `id`: schemathesis would link it to the body's `id` and add a stateful phase to the fuzz.
OrderNumber = Annotated[int, Query(ge=1, le=10_000_000, description="the order's id")]


def _limiter(request: Request) -> SlidingWindowCounterRateLimiter:
    limiter: SlidingWindowCounterRateLimiter = request.app.state.rate_limit_pair
    return limiter


Limiter = Annotated[SlidingWindowCounterRateLimiter, Depends(_limiter)]


@pair.variant("bad")
async def unlimited(pool: Pool, metrics: AppMetrics) -> dict[str, Any]:
    """No limit: every request runs the report, however many one client sends."""
    return await _report(pool, metrics)


@pair.variant("good", responses={LIMITED_STATUS: "the client used its allowance: Retry-After"})
async def limited(
    request: Request, pool: Pool, metrics: AppMetrics, limiter: Limiter, client: Client = None
) -> dict[str, Any]:
    """A limit per client in Redis (sliding window): past it a 429 with Retry-After, no query."""
    who = client or _address(request)
    if not await limiter.hit(LIMIT, who):
        metrics.inc(LIMITED)
        stats = await limiter.get_window_stats(LIMIT, who)
        raise HTTPException(
            LIMITED_STATUS,
            f"more than {LIMIT_PER_WINDOW} reports in {WINDOW_SECONDS} s",
            headers={"Retry-After": str(retry_after(stats.reset_time))},
        )
    return await _report(pool, metrics)


async def _report(pool: asyncpg.Pool, metrics: Metrics) -> dict[str, Any]:
    """The expensive work: one aggregate over every order."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(REPORT_SQL)
    metrics.inc(REPORTS)
    return {"months": [dict(r) for r in rows]}


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def retry_after(reset_time: float, now: float | None = None) -> int:
    """Whole seconds until the limit lets the client in again (RFC 9110: delay-seconds), >= 1."""
    now = time.time() if now is None else now
    return max(1, math.ceil(reset_time - now))


@pair.route("order", body=Order, responses={404: "no order with that id"})
async def order(pool: Pool, number: OrderNumber) -> dict[str, Any]:
    """The bystander: one order by its key, what every other client of the service does."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(ORDER_SQL, number)
    if row is None:
        raise HTTPException(404, f"no order {number}")
    return {**dict(row), "placed_at": row["placed_at"].isoformat()}


@pair.reset
async def reset(request: Request) -> dict[str, int]:
    """Every client's allowance whole again: the limiter's database emptied."""
    limits_redis: aioredis.Redis = request.app.state.rate_limit_redis
    keys = int(await limits_redis.dbsize())
    await limits_redis.flushdb()
    return {"cleared": keys}


def limits_database(of: aioredis.Redis) -> contextlib.AbstractAsyncContextManager[aioredis.Redis]:
    """A client of the pair's own logical database, beside `of`'s (closed at the end)."""
    return own_database(of, LIMITS_DATABASE_OFFSET)


def limiter_on(client: aioredis.Redis) -> SlidingWindowCounterRateLimiter:
    """The limiter, its storage on `client`'s connection pool (the URI names the scheme only)."""
    storage = RedisStorage(
        "async+redis://",
        implementation="redispy",
        key_prefix=KEY_PREFIX,
        # limits passes it on to redis-py's client (its signature types options as scalars)
        connection_pool=client.connection_pool,  # type: ignore[arg-type]
    )
    return SlidingWindowCounterRateLimiter(storage)


@pair.lifespan
@contextlib.asynccontextmanager
async def _limiter_lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with limits_database(app.state.redis) as client:
        app.state.rate_limit_redis = client
        app.state.rate_limit_pair = limiter_on(client)
        yield


# Seed data: orders spread over two years, each with a customer and a total.
TABLE = "rate_limit_orders"


@pair.table(
    TABLE,
    """CREATE TABLE rate_limit_orders (
        id          bigint      PRIMARY KEY,
        customer_id integer     NOT NULL,
        placed_at   timestamptz NOT NULL,
        total_cents integer     NOT NULL
    )""",
)
def _orders(size: Size, rng: random.Random) -> Iterator[tuple[int, int, datetime, int]]:
    customers = max(1, size["orders"] // 10)
    for order_id in range(1, size["orders"] + 1):
        placed = FIRST_DAY + timedelta(seconds=rng.randrange(DAYS * 86_400))
        yield order_id, rng.randint(1, customers), placed, rng.randint(100, MAX_TOTAL_CENTS)


# No micro benchmark: the lesson is one client's load landing on another, which a core run
# alone cannot show (a lone request passes the limit, and then does the same query plus a
# Redis script; the 429 that is the saving is not the same result, which micro cores must be).

# The workshop exercise (docs/architecture.md, "Exercises"): stop the abuser, not everyone.
pair.exercise(
    reference="limited",
    task="""Return the same report as `unlimited` (_report), but at most LIMIT (20 a second) per
    client: call `limiter.hit(LIMIT, who)` with the client's X-Client header (`client`, else
    _address(request)) before any SQL, and past the limit count metrics.inc(LIMITED) and raise
    HTTPException(429, ..., headers={"Retry-After": ...}) with the seconds until the client may
    come back (limiter.get_window_stats(LIMIT, who).reset_time, through retry_after). The
    bystander, another client, must never be limited.""",
    knob=200,
    min_ratio=2.0,
    shows=[
        Shows(
            "limited",
            "the abuser is never answered 429: the limit is not checked, or not per client",
            at_least=50,
        ),
        Shows(
            "reports",
            "the abuser's excess still runs the report: check the limit before the query",
            at_most=0.5,
        ),
    ],
)


pair.no_micro(
    """The limit's saving is an answer that differs by design (a 429 before any SQL, not the
    report), and the micro contract compares the cores' answers."""
)
