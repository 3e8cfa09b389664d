"""K sequential GETs vs one MGET vs a pipeline: the same K cached items from Redis.

A page that shows K cached items (product cards, user badges) often reads them the way the
code is written: a loop, one `await redis.get(key)` per item. Each await is a round trip:
the request is sent, the server answers, only then is the next one sent, so the page costs K
round trips however fast Redis executes each GET. MGET asks for all K keys in one command;
a pipeline (no transaction) sends the K GETs in one write and reads the K replies together.
Both pay one round trip; the pipeline still runs K commands on the server, MGET one.

On loopback a round trip is tens of microseconds, mostly the client library's and the kernel's
work per command; across a network each one adds the link's round-trip time, so the gap here
is the smallest it gets. The items are seeded at startup under the pair's own key prefix
(ITEMS keys, no TTL) and every variant returns the same bytes: the stored JSON values, in key
order, joined into one JSON array.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException, Query, Response

from ..data import WORDS
from ..deps import AppMetrics, RedisClient
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference, Shows

MAX_K = 1000  # bounded: K is user input, and K sequential round trips must stay short
ITEMS = MAX_K  # items seeded: every K reads items 1..K
KEY_PREFIX = "pairbench:redis_batch:v1:item:"  # v1: bump when an item's shape changes
SEED_CHUNK = 500  # keys per MSET while seeding: one round trip each, no huge command
SEED = 20261204  # the items' contents are the same on every start


class Item(Body):
    """One cached item, as stored in Redis."""

    id: int
    name: str
    price_cents: int
    tags: list[str]


pair = Pair(
    name="redis_batch",
    title="Redis: K GETs vs MGET vs a pipeline",
    summary="K cached items per request: one round trip per GET, or one for all K.",
    knob=Knob("k", "keys per request", "keys"),
    # The mechanism: K round trips against 1 (counted where the client awaits a reply), and
    # the commands the server ran (INFO commandstats): K, 1 for MGET, K for the pipeline.
    counters=["redis_round_trips", "redis_commands"],
    body=list[Item],
    reference=Reference(
        figure="10,000 PINGs over loopback: 1.19 s one by one vs 0.25 s pipelined (4.7x)",
        source="Redis documentation, Redis pipelining",
        ratio=1.185238 / 0.250783,
        url="https://redis.io/docs/latest/develop/use/pipelining/",
        knob=10_000,
    ),
)
ROUND_TRIPS = pair.counter(
    "redis_round_trips",
    "Redis round trips: requests sent to Redis whose reply was awaited before going on",
    label="Redis round trips",
    unit="round trips",
)

NOT_SEEDED = {404: "an item is not in Redis (the app seeds them at startup)"}
K = Annotated[int, Query(ge=1, le=MAX_K, description="items (keys) per request")]


@pair.variant("bad", responses=NOT_SEEDED)
async def sequential(redis: RedisClient, metrics: AppMetrics, k: K) -> Response:
    """K sequential GETs: one round trip per key."""
    values = []
    for key in item_keys(k):
        values.append(await redis.get(key))
        metrics.inc(ROUND_TRIPS)
    return _items(values)


@pair.variant("good", responses=NOT_SEEDED)
async def mget(redis: RedisClient, metrics: AppMetrics, k: K) -> Response:
    """One MGET: one command, one round trip for all K keys."""
    values = await redis.mget(item_keys(k))
    metrics.inc(ROUND_TRIPS)
    return _items(values)


@pair.variant("good", responses=NOT_SEEDED)
async def pipeline(redis: RedisClient, metrics: AppMetrics, k: K) -> Response:
    """A pipeline: K GETs sent in one write, one round trip (K commands on the server)."""
    # transaction=False: a plain pipeline; True would wrap the GETs in MULTI/EXEC, two more
    # commands for an atomicity a read of independent keys does not need.
    async with redis.pipeline(transaction=False) as pipe:
        for key in item_keys(k):
            pipe.get(key)
        values = await pipe.execute()
    metrics.inc(ROUND_TRIPS)
    return _items(values)


def item_keys(k: int) -> list[str]:
    """The keys of items 1..k."""
    return [f"{KEY_PREFIX}{i}" for i in range(1, k + 1)]


def _items(values: Sequence[bytes | str | None]) -> Response:
    """The stored values as one JSON array, the same bytes for every variant."""
    stored = []
    for position, value in enumerate(values, start=1):
        if value is None:
            raise HTTPException(status_code=404, detail=f"item {position} is not in Redis")
        # str only in the type: the app's Redis client does not decode, a value is its bytes.
        stored.append(value.encode() if isinstance(value, str) else value)
    return Response(b"[" + b",".join(stored) + b"]", media_type="application/json")


# The items, seeded at startup: ITEMS small JSON values, deterministic, with no TTL (a page of
# items that are always cached: what is measured is the reading, not the filling).


def item(item_id: int, rng: random.Random) -> bytes:
    """One item's stored JSON."""
    value: dict[str, Any] = {
        "id": item_id,
        "name": " ".join(rng.choice(WORDS) for _ in range(3)).capitalize(),
        "price_cents": rng.randint(100, 100_000),
        "tags": sorted(rng.sample(WORDS, 3)),
    }
    return json.dumps(value, separators=(",", ":")).encode()


async def seed_items(redis: aioredis.Redis) -> int:
    """Write the ITEMS items (idempotent: the same bytes every time); returns how many."""
    rng = random.Random(SEED)
    values = {f"{KEY_PREFIX}{i}": item(i, rng) for i in range(1, ITEMS + 1)}
    keys = list(values)
    for start in range(0, len(keys), SEED_CHUNK):
        await redis.mset({key: values[key] for key in keys[start : start + SEED_CHUNK]})
    return len(keys)


@pair.lifespan
@contextlib.asynccontextmanager
async def _seeded(app: FastAPI) -> AsyncIterator[None]:
    """Seed the items when the app starts (two MSETs, a few milliseconds)."""
    await seed_items(app.state.redis)
    yield


# The micro benchmark (docs/architecture.md, "The micro suite"): the K awaited GETs against
# the one MGET, no HTTP, on the micro suite's own Redis database.
MICRO_K = 100


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_items(on: MicroServers) -> AsyncIterator[None]:
    await seed_items(on.redis)
    yield


@pair.micro("sequential", knob=MICRO_K)
async def _micro_sequential(on: MicroServers) -> bytes:
    return bytes((await sequential(on.redis, on.metrics, MICRO_K)).body)


@pair.micro("mget", knob=MICRO_K)
async def _micro_mget(on: MicroServers) -> bytes:
    return bytes((await mget(on.redis, on.metrics, MICRO_K)).body)


# The workshop exercise (docs/architecture.md, "Exercises"): one round trip instead of K.
pair.exercise(
    reference="mget",
    task="""Return the same items as `sequential` (the values of item_keys(k), in that order,
    as _items builds the body), but with one round trip to Redis instead of one per key:
    read the K keys with one command (or one pipeline), and count each round trip with
    metrics.inc(ROUND_TRIPS).""",
    knob=100,
    min_ratio=2.0,
    shows=[
        Shows(
            "redis_round_trips",
            "still one round trip per key: ask for all K keys at once (MGET, or a pipeline)",
        )
    ],
)
