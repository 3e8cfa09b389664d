"""A pair's own Redis logical database, beside the app's.

A pair whose keys must not meet any other pair's (KEYS walks the whole keyspace; a limiter or a
cache is emptied between trials with FLUSHDB) uses a logical database of its own: the app's
number plus an offset the pair declares. The app uses database 0, the gate's baseline 1 and the
micro suite 2 and a workshop check 3 (each with the same offsets), so the offsets keep every sum
under Redis's default 16 databases (docs/architecture.md, "The pair contract"). The sums of two
contexts can meet (the baseline's 1 + 11 is a workshop check's 3 + 9): a pair's database holds
only what the pair empties and refills itself, never a value that must outlive another
context's FLUSHDB (uvicorn_workers keeps its calibration in the app's database for that reason).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis


@contextlib.asynccontextmanager
async def own_database(of: aioredis.Redis, offset: int) -> AsyncIterator[aioredis.Redis]:
    """A client of the logical database `offset` above `of`'s, closed at the end."""
    pool = of.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs["db"] = int(kwargs.get("db", 0)) + offset
    client = aioredis.Redis(
        connection_pool=aioredis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )
    try:
        yield client
    finally:
        await client.aclose(close_connection_pool=True)
