"""An unbounded in-process cache vs a bounded LRU with a TTL vs a shared Redis cache.

The cache a service grows by itself: a dict in the process, keyed by the request's parameters,
whose entries carry an expiry that is checked when an entry is read (and dropped then). An
entry whose key is never asked for again is never read, so never dropped: with many distinct
keys the dict only grows, and the server's memory with it, until the process is killed for it.
Each key's answer is a report of about 130 KiB computed by PostgreSQL (REPORT_SECTIONS sections
of generated text: real database work, no seeded table, so the key space can be any size).

The fixes bound what is held. `bounded_lru` is a cachetools TTLCache: at most BOUNDED_ENTRIES
entries, the least recently used evicted first, each expiring after TTL_S; its memory stops
growing at the bound, and it pays for that in hits once the keys requested outnumber it.
`redis_shared` is the cache pair's cache-aside in Redis (GET, on a miss compute and SET with
the TTL): the entries live outside the process, shared by every worker, bounded by Redis's
`maxmemory` and expiry, at the price of a round trip per read. Its keys are in a logical
database of the pair's own (the app's plus CACHE_DATABASE_OFFSET).

The knob is the count of distinct keys the load draws from (uniformly: the scenario's
`[keys] count = "knob"`). The lesson is the server's peak resident memory per trial (the
generic `peak_rss`) beside the hit ratio; `GET /local_cache/stats` (the scenario's
stats_request, stored with every trial) shows each cache's entries and bytes after the trial.
Every trial starts from empty caches: the pair's reset empties all three and hands the freed
memory back to the operating system, so one variant's entries are never charged to the next.

The unbounded dict is unbounded in its design, not on this machine: a fuse stops it storing
more than UNBOUNDED_FUSE_ENTRIES entries (about 260 MiB), far above what any profile's trial
reaches (a quick trial stores a few hundred at most), so a test or a long run can never eat the machine.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

import asyncpg
import redis.asyncio as aioredis
from cachetools import TTLCache
from fastapi import Depends, FastAPI, Query, Request, Response

from ..counters import PERCENT, per_sum_of
from ..deps import AppMetrics, Pool
from ..openapi import Body
from ..redisdb import own_database
from ..registry import Knob, MicroServers, Pair, Reference

MAX_ITEM = 10_000_000  # the key space is the knob ([keys] allows up to ten million)
# An item's report: 32 sections of 4 KiB of text, about 130 KiB of JSON (a large rendered page's
# worth), in a few rows: a miss costs a statement, not a big decode.
REPORT_SECTIONS = 32
SECTION_REPEATS = 128  # an md5 digest (32 characters) repeated: 4 KiB a section
TTL_S = 30.0  # every cache's entries expire after this (longer than any trial: hits, not expiry)
BOUNDED_ENTRIES = 32  # the LRU's bound: about 4 MiB of reports
# The fuse of the unbounded dict (see the module docstring): about 260 MiB of reports.
UNBOUNDED_FUSE_ENTRIES = 2_048
CACHE_DATABASE_OFFSET = 11  # the app uses database 0 (the gate's baseline 1, the micro suite 2)
KEY_PREFIX = "pairbench:local_cache:v1:"  # v1: bump when a report's shape changes

# One statement: the item's report sections (deterministic: the same item always gives the same
# bytes).
REPORT_SQL = """
SELECT n, repeat(md5(concat($1::int, ':', n)), $3::int) AS text
FROM generate_series(1, $2::int) AS n ORDER BY n
"""


class Section(Body):
    n: int
    text: str


class Report(Body):
    """An item's report: its sections of text."""

    item: int
    sections: list[Section]


class CacheStats(Body):
    """What each cache holds now."""

    unbounded_entries: int
    unbounded_bytes: int
    bounded_entries: int
    bounded_bytes: int
    redis_entries: int


pair = Pair(
    name="local_cache",
    title="Unbounded in-process cache vs bounded LRU",
    summary="A dict keyed by request parameters grows with every distinct key; an LRU stops.",
    knob=Knob("keys", "distinct keys requested", "keys"),
    counters=["peak_rss", "local_cache_hits", "queries", "redis_commands"],
    body=Report,
    reference=Reference(
        figure="an LRU cache of n entries holds at most n (memory = n x entry size);"
        " an unbounded one holds every distinct key ever requested",
        source="the bounded-cache model (Python's functools.lru_cache documentation)",
        url="https://docs.python.org/3/library/functools.html#functools.lru_cache",
    ),
)
HITS = pair.counter(
    "local_cache_hits",
    "Local cache hits",
    label="cache hit ratio",
    unit="%",
    per=per_sum_of(["local_cache_hits", "local_cache_misses"]),
    scale=PERCENT,
)
MISSES = pair.counter(
    "local_cache_misses",
    "Local cache misses (reports computed)",
    label="cache misses",
    unit="misses",
)

Item = Annotated[int, Query(ge=1, le=MAX_ITEM, description="item id (the cache key)")]


@dataclass
class Caches:
    """The in-process caches (one per app) and the Redis client of the pair's database."""

    redis: aioredis.Redis
    # item -> (expires at, report): the expiry is checked only when the item is read again.
    unbounded: dict[int, tuple[float, bytes]] = field(default_factory=dict)
    bounded: TTLCache[int, bytes] = field(
        default_factory=lambda: TTLCache(maxsize=BOUNDED_ENTRIES, ttl=TTL_S)
    )

    def clear(self) -> None:
        self.unbounded.clear()
        self.bounded.clear()


def _caches(request: Request) -> Caches:
    caches: Caches = request.app.state.local_cache
    return caches


AppCaches = Annotated[Caches, Depends(_caches)]


@pair.variant("bad")
async def unbounded_dict(
    pool: Pool, caches: AppCaches, metrics: AppMetrics, item: Item
) -> Response:
    """Unbounded dict: entries expire only when read again, so unread keys stay forever."""
    entry = caches.unbounded.get(item)
    now = time.monotonic()
    if entry is not None:
        expires, body = entry
        if expires > now:
            metrics.inc(HITS)
            return _json(body)
        del caches.unbounded[item]  # evicted on read: the only eviction there is
    metrics.inc(MISSES)
    body = await report(pool, item)
    if len(caches.unbounded) < UNBOUNDED_FUSE_ENTRIES:  # the fuse, never reached by a run
        caches.unbounded[item] = (now + TTL_S, body)
    return _json(body)


@pair.variant("good")
async def bounded_lru(pool: Pool, caches: AppCaches, metrics: AppMetrics, item: Item) -> Response:
    """Bounded LRU with TTL: at most 32 entries, the least recently used evicted first."""
    body = caches.bounded.get(item)
    if body is not None:
        metrics.inc(HITS)
        return _json(body)
    metrics.inc(MISSES)
    body = await report(pool, item)
    caches.bounded[item] = body
    return _json(body)


@pair.variant("good")
async def redis_shared(pool: Pool, caches: AppCaches, metrics: AppMetrics, item: Item) -> Response:
    """Shared Redis cache-aside: GET, on a miss compute and SET with the TTL (out of process)."""
    key = cache_key(item)
    cached = await caches.redis.get(key)
    if cached is not None:
        metrics.inc(HITS)
        return _json(cached)
    metrics.inc(MISSES)
    body = await report(pool, item)
    await caches.redis.set(key, body, px=round(TTL_S * 1000))
    return _json(body)


async def report(pool: asyncpg.Pool, item: int) -> bytes:
    """Compute an item's report in PostgreSQL and serialize it (the bytes every cache holds)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(REPORT_SQL, item, REPORT_SECTIONS, SECTION_REPEATS)
    sections = [{"n": row["n"], "text": row["text"]} for row in rows]
    return json.dumps({"item": item, "sections": sections}, separators=(",", ":")).encode()


def cache_key(item: int) -> str:
    """Where `redis_shared` caches an item's report (in the pair's own database)."""
    return f"{KEY_PREFIX}item:{item}"


def _json(body: bytes | str) -> Response:
    # str only in the type: the pair's Redis client does not decode, so a hit is the bytes stored.
    return Response(body, media_type="application/json")


@pair.route("stats", body=CacheStats)
async def stats(caches: AppCaches) -> dict[str, int]:
    """What each cache holds now (the scenario's stats_request: stored after every trial)."""
    return {
        "unbounded_entries": len(caches.unbounded),
        "unbounded_bytes": sum(len(body) for _, body in caches.unbounded.values()),
        "bounded_entries": len(caches.bounded),
        "bounded_bytes": sum(len(body) for body in caches.bounded.values()),
        "redis_entries": int(await caches.redis.dbsize()),
    }


@pair.reset
async def reset(caches: AppCaches) -> dict[str, int]:
    """Empty every cache, so a trial starts cold and holds only its own variant's entries."""
    dropped = len(caches.unbounded) + len(caches.bounded)
    caches.clear()
    await caches.redis.flushdb()  # the pair's own database: nothing else lives there
    _return_freed_memory()
    return {"dropped": dropped}


def _return_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc's malloc_trim), so the resident memory the
    next trial starts from, and its peak, are not the previous trial's entries.

    Reports of 130 KiB soon fall below glibc's mmap threshold (it rises to the size of the
    largest block freed): freed, they stay in the heap, resident, until trimmed. Elsewhere
    (macOS, musl) there is no malloc_trim and nothing is done: the peak then includes what the
    allocator kept.
    """
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    if name is None:
        return
    libc = ctypes.CDLL(name)
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def cache_database(of: aioredis.Redis) -> contextlib.AbstractAsyncContextManager[aioredis.Redis]:
    """A client of the pair's own logical database, beside `of`'s (closed at the end)."""
    return own_database(of, CACHE_DATABASE_OFFSET)


@pair.lifespan
@contextlib.asynccontextmanager
async def _caches_lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with cache_database(app.state.redis) as client:
        await client.flushdb()  # entries of a previous server are not this one's
        app.state.local_cache = Caches(client)
        yield


# The micro benchmark (docs/architecture.md, "The micro suite"): one read of a cached item, the
# dict against the TTLCache (a hit once the first call filled it), no HTTP. The knob (distinct
# keys) is the load's, not a call's.
MICRO_ITEM = 1


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_caches(on: MicroServers) -> AsyncIterator[Caches]:
    async with cache_database(on.redis) as client:
        yield Caches(client)


@pair.micro("unbounded_dict", knob=None)
async def _micro_unbounded(on: MicroServers) -> bytes:
    response = await unbounded_dict(on.pool, on.resource, on.metrics, MICRO_ITEM)
    return bytes(response.body)


@pair.micro("bounded_lru", knob=None)
async def _micro_bounded(on: MicroServers) -> bytes:
    response = await bounded_lru(on.pool, on.resource, on.metrics, MICRO_ITEM)
    return bytes(response.body)


pair.no_exercise(
    """The lesson is memory held over a trial, not latency: the unbounded dict answers as fast
    as the bounded cache (faster, with more hits), so the exercise check's latency ratio of
    bad / yours cannot reward the fix."""
)
