"""Cache invalidation by KEYS pattern vs a tag set: dropping one product's cached pages.

A product changed, so every cached page that shows it must go: `product:17:*`. The quick way
to write it is KEYS with that pattern, then DEL what it found. KEYS is O(keys in the
database), not O(matches): it walks the whole keyspace to find the product's nine keys, and
Redis executes one command at a time, so while it walks, every other client waits (here a
bystander endpoint that reads one cached value). The cost grows with everything else the cache
holds, and it lands on everyone. The fix keeps an index: whoever caches a page also adds its key
to the product's tag set, so invalidation is SMEMBERS (the product's keys) and one DEL,
O(matches). SCAN with MATCH is the middle way: it walks the same keyspace, but in slices of
SCAN_COUNT keys, one round trip each, so other clients get in between; the walk is as long as
ever, only no longer in one piece.

The keys live in a Redis logical database of the pair's own (the app's database plus
KEYS_DATABASE_OFFSET), so the keyspace KEYS walks is exactly the knob: `/redis_keys/seed`
(the scenario's [prepare]) fills it with `keys` keys, ten per product (nine cached pages and
the tag set). Each measured invalidation follows an unmeasured `fill` of the same product, so
every invalidation deletes the same nine keys and every variant returns the same list.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Query, Request, Response

from ..openapi import Body
from ..redisdb import own_database
from ..registry import Knob, MicroServers, Pair, Reference, Shows

KEYS_DATABASE_OFFSET = 8  # the app uses database 0 (the gate's baseline 1, the micro suite 2)
KEY_PREFIX = "pairbench:redis_keys:v1:"  # v1: bump when a page's shape changes
PAGES_PER_PRODUCT = 9  # cached pages showing a product; with its tag set, 10 keys a product
KEYS_PER_PRODUCT = PAGES_PER_PRODUCT + 1
# Bounded: the seed's size is user input. A million is the talk's largest (11 s, 160 MB here).
MAX_KEYS = 1_000_000
MAX_PRODUCT = MAX_KEYS // KEYS_PER_PRODUCT
SCAN_COUNT = 1000  # keys SCAN examines per call: Redis's default of 10 would need 100,000 calls
SEED_BATCH = 1000  # products per pipeline while seeding
# Products 1..HOT_PRODUCTS are the ones the load invalidates (the scenario's [keys] count): seed
# refills them, since the last load left them invalidated.
HOT_PRODUCTS = 50
SIZE_KEY = f"{KEY_PREFIX}seeded"  # how many keys seed last stored
BYSTANDER_KEY = f"{KEY_PREFIX}bystander"
BYSTANDER_VALUE = b'{"status":"ok","page":"home"}'


class Invalidated(Body):
    """The cached pages an invalidation deleted, sorted."""

    product: int
    deleted: list[str]


class Seeded(Body):
    keys: int
    products: int
    added: int
    seconds: float


class Filled(Body):
    product: int
    pages: int


class Bystander(Body):
    status: str
    page: str


pair = Pair(
    name="redis_keys",
    title="Invalidation by KEYS pattern vs a tag set",
    summary="Drop one product's cached pages: KEYS walks every key, blocking all clients.",
    knob=Knob("keys", "keys stored in Redis", "keys"),
    # The mechanism: Redis's own time per invalidation, during which every client waits; the
    # commands are the same in number (fill, then KEYS + DEL or SMEMBERS + DEL).
    counters=["redis_seconds", "redis_commands"],
    body=Invalidated,
    reference=Reference(
        figure="an entry-level laptop scans a 1 million key database in 40 ms",
        source="Redis documentation of KEYS",
        url="https://redis.io/docs/latest/commands/keys/",
    ),
)

Product = Annotated[int, Query(ge=1, le=MAX_PRODUCT, description="product id")]
Keys = Annotated[
    int, Query(ge=KEYS_PER_PRODUCT, le=MAX_KEYS, description="keys to store (10 per product)")
]


def _redis(request: Request) -> aioredis.Redis:
    client: aioredis.Redis = request.app.state.redis_keys_pair
    return client


# The pair's own logical database (not the app's RedisClient): see the module docstring.
KeysRedis = Annotated[aioredis.Redis, Depends(_redis)]


@pair.variant("bad", method="POST")
async def keys_pattern(redis: KeysRedis, product: Product) -> dict[str, Any]:
    """KEYS pattern, then DEL: walks every key in the database while all clients wait."""
    found = await redis.keys(f"{KEY_PREFIX}product:{product}:*")
    if found:
        await redis.delete(*found)
    return _invalidated(product, found)


@pair.variant("middle", method="POST")
async def scan(redis: KeysRedis, product: Product) -> dict[str, Any]:
    """SCAN MATCH in slices of 1,000 keys: others get in between, the walk is as long."""
    found = [k async for k in redis.scan_iter(f"{KEY_PREFIX}product:{product}:*", SCAN_COUNT)]
    if found:
        await redis.delete(*found)
    return _invalidated(product, found)


@pair.variant("good", method="POST")
async def tag_set(redis: KeysRedis, product: Product) -> dict[str, Any]:
    """A tag set per product: SMEMBERS, then DEL its keys and the set (O(matches))."""
    tag = tag_key(product)
    found = list(await redis.smembers(tag))
    await redis.delete(*found, tag)
    return _invalidated(product, found)


def _invalidated(product: int, found: Iterable[bytes | str]) -> dict[str, Any]:
    """The body every variant returns: the deleted keys, sorted (KEYS and SCAN have no order)."""
    names = (k.decode() if isinstance(k, bytes) else k for k in found)
    return {"product": product, "deleted": sorted(names)}


def page_key(product: int, page: int) -> str:
    """A cached page that shows `product`."""
    return f"{KEY_PREFIX}product:{product}:page:{page}"


def tag_key(product: int) -> str:
    """The set of `product`'s cached pages (outside the `product:N:*` pattern)."""
    return f"{KEY_PREFIX}tag:product:{product}"


def _page(product: int, page: int) -> bytes:
    return json.dumps({"product": product, "page": page}, separators=(",", ":")).encode()


def _cache_pages(pipe: Any, products: Iterable[int]) -> None:
    """Queue what a cache writer does per product: its pages, and their keys in its tag set."""
    for product in products:
        pages = {page_key(product, p): _page(product, p) for p in range(PAGES_PER_PRODUCT)}
        pipe.mset(pages)
        pipe.sadd(tag_key(product), *pages)


@pair.route("fill", methods=["POST"], body=Filled)
async def fill(redis: KeysRedis, product: Product) -> dict[str, int]:
    """Cache the product's pages again (the load sends it, unmeasured, before each invalidation)."""
    async with redis.pipeline(transaction=False) as pipe:
        _cache_pages(pipe, [product])
        await pipe.execute()
    return {"product": product, "pages": PAGES_PER_PRODUCT}


@pair.route("read", body=Bystander)
async def read(redis: KeysRedis) -> Response:
    """The bystander: one GET of a cached value, as any other endpoint on this Redis does."""
    # Before the first seed the key is absent: the same bytes, so the body is always the one.
    value = await redis.get(BYSTANDER_KEY) or BYSTANDER_VALUE
    return Response(value, media_type="application/json")


@pair.route("seed", body=Seeded)
async def seed(redis: KeysRedis, keys: Keys) -> dict[str, Any]:
    """Store `keys` keys (10 per product) in the pair's database: the knob (the [prepare])."""
    return await seed_keys(redis, keys)


async def seed_keys(redis: aioredis.Redis, keys: int) -> dict[str, Any]:
    """Make the pair's database hold `keys // 10` products, adding only what is missing."""
    started = time.perf_counter()
    products = keys // KEYS_PER_PRODUCT
    stored = int(await redis.get(SIZE_KEY) or 0) // KEYS_PER_PRODUCT
    if stored > products:  # fewer wanted: start again (the database is the pair's alone)
        await redis.flushdb()
        stored = 0
    # The hot products again (the last load left them invalidated), then the new ones.
    wanted = [*range(1, min(HOT_PRODUCTS, stored) + 1), *range(stored + 1, products + 1)]
    for start in range(0, len(wanted), SEED_BATCH):
        async with redis.pipeline(transaction=False) as pipe:
            _cache_pages(pipe, wanted[start : start + SEED_BATCH])
            await pipe.execute()
    await redis.mset({SIZE_KEY: products * KEYS_PER_PRODUCT, BYSTANDER_KEY: BYSTANDER_VALUE})
    return {
        "keys": products * KEYS_PER_PRODUCT,
        "products": products,
        "added": max(0, products - stored),
        "seconds": round(time.perf_counter() - started, 3),
    }


def keys_database(of: aioredis.Redis) -> contextlib.AbstractAsyncContextManager[aioredis.Redis]:
    """A client of the pair's own logical database, beside `of`'s (closed at the end)."""
    return own_database(of, KEYS_DATABASE_OFFSET)


@pair.lifespan
@contextlib.asynccontextmanager
async def _database(app: FastAPI) -> AsyncIterator[None]:
    async with keys_database(app.state.redis) as client:
        app.state.redis_keys_pair = client
        yield


# The micro benchmark (docs/architecture.md, "The micro suite"): one fill and invalidation of a
# product with KEYS against the tag set, no HTTP, at 100,000 keys.
MICRO_KEYS = 100_000
MICRO_PRODUCT = 1


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_database(on: MicroServers) -> AsyncIterator[aioredis.Redis]:
    async with keys_database(on.redis) as client:
        await client.flushdb()
        await seed_keys(client, MICRO_KEYS)
        yield client


@pair.micro("keys_pattern", knob=MICRO_KEYS)
async def _micro_keys_pattern(on: MicroServers) -> Any:
    await fill(on.resource, MICRO_PRODUCT)
    return await keys_pattern(on.resource, MICRO_PRODUCT)


@pair.micro("tag_set", knob=MICRO_KEYS)
async def _micro_tag_set(on: MicroServers) -> Any:
    await fill(on.resource, MICRO_PRODUCT)
    return await tag_set(on.resource, MICRO_PRODUCT)


# The workshop exercise (docs/architecture.md, "Exercises"): invalidate without walking the keys.
pair.exercise(
    reference="tag_set",
    task="""Delete the same keys as `keys_pattern` (the product's cached pages,
    page_key(product, 0..8)) and return the same body (_invalidated), without KEYS or SCAN:
    nothing may walk the whole keyspace, which blocks every other Redis client meanwhile.
    `fill` adds each page's key to the product's tag set, tag_key(product).""",
    knob=100_000,
    min_ratio=2.0,
    shows=[
        Shows(
            "redis_seconds",
            "Redis still spends milliseconds per invalidation: something walks the keyspace",
            at_most=0.5,
        )
    ],
)
