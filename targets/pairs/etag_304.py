"""Conditional GET: always 200 vs an ETag hashed from the body vs an ETag from a version.

A client that already holds a document revalidates it with `If-None-Match: <ETag it got>`.
Three ways to answer:

- `always_200`: ignore the header, run the query, serialize, send the whole body every time.
- `hashed`: the ETag is a hash of the body (what a middleware or the seed's handler does): a
  match answers 304 without the body, which saves the bytes on the wire, but the query and the
  serializer still run, to have a body to hash.
- `versioned`: the ETag names a version number kept in Redis and bumped by every write: a match
  answers 304 after one Redis GET, touching neither PostgreSQL nor the serializer.

Every 200 carries the same body; a 304 carries the ETag of the 200 it replaces. A write
(`POST /etag_304/write`) changes a row, then bumps the version, in that order: a reader that
sees the new version then always reads the new row, so a 304 is never sent for a body the
client does not have (the reverse order would let a reader pair the new version with the old
row and keep it valid until the next write). The knob is the document's size in items.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import Query, Request, Response

from ..counters import PERCENT
from ..data import WORDS, Size, title
from ..deps import AppMetrics, Pool, RedisClient
from ..metrics import Metrics
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Shows

MAX_ITEMS = 10_000  # bounded: the document's size is user input, and no profile seeds more
MAX_PRICE_CENTS = 10_000_000
NOT_MODIFIED = 304
JSON = "application/json"
KEY_PREFIX = "pairbench:etag_304:v1:"  # the pair's own Redis keys; v1: bump with the key's shape
VERSION_KEY = f"{KEY_PREFIX}version"  # one version for the table: a write changes every document


class Item(Body):
    id: int
    sku: str
    name: str
    description: str
    price_cents: int


class Document(Body):
    """The first `items` items by id: the document a client keeps and revalidates."""

    items: list[Item]


class Written(Body):
    """A write's outcome: the version now current."""

    version: int


class Etags(Body):
    """The current ETags of a document, both spellings, as one If-None-Match list."""

    etags: str


pair = Pair(
    name="etag_304",
    title="Always 200 vs ETag from a hash vs ETag from a version",
    summary="A client revalidates a document: full body, hash of the body, or a version in Redis.",
    knob=Knob("items", "items in the document", "items"),
    sizes={
        "test": {"items": 1_000},
        "quick": {"items": MAX_ITEMS},
        "standard": {"items": MAX_ITEMS},
        "talk": {"items": MAX_ITEMS},
    },
    # The mechanism: a 304 by version runs no query and serializes nothing; a 304 by hash
    # still does both and saves only the bytes on the wire.
    counters=["queries", "serialized", "not_modified", "response_bytes", "redis_commands"],
    equivalence="not_modified",
    body=Document,
)
SERIALIZED = pair.counter(
    "serialized",
    "Documents read from PostgreSQL and serialized to answer a request",
    label="documents serialized",
    unit="documents",
)
NOT_MODIFIED_REPLIES = pair.counter(
    "not_modified",
    "Requests answered 304 Not Modified",
    label="304 share",
    unit="%",
    scale=PERCENT,
)

ITEMS_SQL = "SELECT id, sku, name, description, price_cents FROM etag_items ORDER BY id LIMIT $1"
WRITE_SQL = "UPDATE etag_items SET price_cents = $1 WHERE id = 1"
# Back to the seeded prices; the rows it changed, so that an unchanged table keeps its version.
RESET_SQL = (
    "UPDATE etag_items SET price_cents = seeded_price_cents WHERE price_cents <> seeded_price_cents"
)

Items = Annotated[int, Query(ge=1, le=MAX_ITEMS, description="items in the document")]
Price = Annotated[int, Query(ge=1, le=MAX_PRICE_CENTS, description="item 1's new price")]


@pair.variant("bad")
async def always_200(pool: Pool, metrics: AppMetrics, items: Items) -> Response:
    """Always 200: the query, the serializer and the whole body, every time."""
    return Response(await _document(pool, metrics, items), media_type=JSON)


@pair.variant("middle")
async def hashed(request: Request, pool: Pool, metrics: AppMetrics, items: Items) -> Response:
    """ETag from a hash of the body: a 304 saves the bytes, not the query or the serializer."""
    body = await _document(pool, metrics, items)
    return _reply(request, metrics, body_etag(body), body)


@pair.variant("good")
async def versioned(
    request: Request, pool: Pool, redis: RedisClient, metrics: AppMetrics, items: Items
) -> Response:
    """ETag from a version in Redis, bumped on write: a 304 costs one Redis GET."""
    # Read before the document: a write landing in between leaves an older version on a newer
    # body, which the next revalidation finds stale (a 200), never the other way round.
    etag = version_etag(await current_version(redis), items)
    if _matches(request, etag):
        return _not_modified(metrics, etag)
    return _reply(request, metrics, etag, await _document(pool, metrics, items))


@pair.route("write", methods=["POST"], body=Written)
async def write(pool: Pool, redis: RedisClient, price_cents: Price) -> dict[str, int]:
    """Change item 1's price (in every document), then bump the version."""
    async with pool.acquire() as conn:
        await conn.execute(WRITE_SQL, price_cents)
    return {"version": await redis.incr(VERSION_KEY)}


@pair.route("etags", body=Etags)
async def etags(
    pool: Pool, redis: RedisClient, metrics: AppMetrics, items: Items
) -> dict[str, str]:
    """Both current ETags of the document, as one If-None-Match list (RFC 9110 allows a list):
    the scenario's [prepare] request, so that one request line revalidates with every variant."""
    body = await _document(pool, metrics, items)
    return {"etags": f"{body_etag(body)}, {version_etag(await current_version(redis), items)}"}


@pair.reset
async def reset(pool: Pool, redis: RedisClient) -> dict[str, int]:
    """The seeded prices back; the version bumped if that changed a row."""
    async with pool.acquire() as conn:
        changed = int((await conn.execute(RESET_SQL)).split()[-1])
    if changed:
        await redis.incr(VERSION_KEY)
    return {"changed": changed}


async def current_version(redis: aioredis.Redis) -> int:
    """The table's version: 0 until the first write (Redis may have been emptied: a version
    that restarts is safe as long as a write bumps it, since ETags name the table's state
    only through it and every write bumps)."""
    raw = await redis.get(VERSION_KEY)
    return 0 if raw is None else int(raw)


def version_etag(version: int, items: int) -> str:
    return f'"v{version}-{items}"'


def body_etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def _matches(request: Request, etag: str) -> bool:
    """Whether If-None-Match names `etag` (a list of tags, or *; weak tags compare weakly)."""
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def _not_modified(metrics: Metrics, etag: str) -> Response:
    metrics.inc(NOT_MODIFIED_REPLIES)
    return Response(status_code=NOT_MODIFIED, headers={"ETag": etag})


def _reply(request: Request, metrics: Metrics, etag: str, body: bytes) -> Response:
    if _matches(request, etag):
        return _not_modified(metrics, etag)
    return Response(body, media_type=JSON, headers={"ETag": etag})


async def _document(pool: asyncpg.Pool, metrics: Metrics, items: int) -> bytes:
    """The document, one query and one serializer for every variant."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(ITEMS_SQL, items)
    metrics.inc(SERIALIZED)
    return encode(rows)


def encode(rows: list[Any]) -> bytes:
    return json.dumps({"items": [dict(r) for r in rows]}, separators=(",", ":")).encode()


# Seed data: items with a name, a sentence of description and a price, about 150 bytes of JSON
# each; the seeded price is kept beside the current one for the reset.
TABLE = "etag_items"


@pair.table(
    TABLE,
    """CREATE TABLE etag_items (
        id                 bigint  PRIMARY KEY,
        sku                text    NOT NULL,
        name               text    NOT NULL,
        description        text    NOT NULL,
        price_cents        integer NOT NULL,
        seeded_price_cents integer NOT NULL
    )""",
)
def _etag_items(size: Size, rng: random.Random) -> Iterator[tuple[int, str, str, str, int, int]]:
    for item_id in range(1, size["items"] + 1):
        price = rng.randint(100, 100_000)
        yield (
            item_id,
            f"{rng.choice(WORDS).upper()}-{item_id:06d}",
            title(rng),
            " ".join(rng.choices(WORDS, k=rng.randint(6, 12))),
            price,
            price,
        )


# The micro benchmark (docs/architecture.md, "The micro suite"): one revalidation of a document
# of MICRO_ITEMS items, no HTTP. The client's copy and its two ETags are fetched once
# (`_client_copy`); each core returns the document the client holds after revalidating, the
# same bytes for all three: the whole document again (query, serialize), the copy kept after
# comparing the hash of a fresh one (query, serialize, hash), or the copy kept after comparing
# the version (one Redis GET).
MICRO_ITEMS = 1_000


@dataclass(frozen=True)
class _ClientCopy:
    body: bytes
    hashed: str  # the ETag `hashed` gave it
    versioned: str  # the ETag `versioned` gave it


@pair.micro_setup
@contextlib.asynccontextmanager
async def _client_copy(on: MicroServers) -> AsyncIterator[_ClientCopy]:
    body = await _document(on.pool, on.metrics, MICRO_ITEMS)
    version = version_etag(await current_version(on.redis), MICRO_ITEMS)
    yield _ClientCopy(body, body_etag(body), version)


@pair.micro("always_200", knob=MICRO_ITEMS)
async def _micro_always_200(on: MicroServers) -> bytes:
    return await _document(on.pool, on.metrics, MICRO_ITEMS)


@pair.micro("hashed", knob=MICRO_ITEMS)
async def _micro_hashed(on: MicroServers) -> bytes:
    copy: _ClientCopy = on.resource
    fresh = await _document(on.pool, on.metrics, MICRO_ITEMS)
    return copy.body if body_etag(fresh) == copy.hashed else fresh


@pair.micro("versioned", knob=MICRO_ITEMS)
async def _micro_versioned(on: MicroServers) -> bytes:
    copy: _ClientCopy = on.resource
    if version_etag(await current_version(on.redis), MICRO_ITEMS) == copy.versioned:
        return copy.body
    return await _document(on.pool, on.metrics, MICRO_ITEMS)


pair.exercise(
    reference="versioned",
    task="""Return the same document as `always_200` (the first `items` rows of `etag_items`
    by id, serialized by `encode`) with an ETag, and answer a request whose If-None-Match
    names the current ETag with a 304 carrying that ETag, without querying PostgreSQL or
    serializing: name the version with `current_version(redis)` (POST /etag_304/write bumps
    it), and count each 304 with metrics.inc(NOT_MODIFIED_REPLIES).""",
    knob=1_000,
    min_ratio=2.0,
    shows=[
        Shows("serialized", "a 304 still reads and serializes the document: check the ETag first"),
        Shows("queries", "a 304 still queries PostgreSQL: the version in Redis is enough"),
    ],
)
