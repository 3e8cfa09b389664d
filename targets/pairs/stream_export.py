"""Buffered vs streamed export: every row fetched, listed and serialized first, or streamed.

An export endpoint sends the first `rows` rows of a table as JSON. Three ways to do it:

- `buffered`: `fetch` every row, build the list, serialize it, then send the body: the rows,
  their dicts and the whole body are in the server's memory at once, and the client waits for
  all of it before the first byte.
- `cursor_array`: a server-side cursor (asyncpg's, inside a transaction, as PostgreSQL needs)
  read `BATCH_ROWS` rows at a time, each batch serialized and sent as a chunk of one JSON array
  through a StreamingResponse: the same bytes as `buffered`, never more than a batch in memory.
- `cursor_lines`: the same cursor, sent as JSON lines (one row a line, `application/x-ndjson`),
  which a client can parse as it arrives.

The rule `jsonlines` compares the rows, whatever the framing: a reply sent as
`application/json` is read as one JSON array (harness/verify.py). Every variant serializes
with orjson, so the framing and the buffering are the only differences.

What streaming costs: a connection from the pool is held until the last chunk is sent (a slow
client holds it longer), and the status line is sent before the first row, so an error after
it cannot become a 500: the client sees a truncated body. Time to first byte, as the load
generator measures it, is the status line and headers, which StreamingResponse sends before
the cursor's first fetch; the first rows follow one batch later.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Annotated

import asyncpg
import orjson
from fastapi import Query, Response
from fastapi.responses import StreamingResponse

from ..data import WORDS, Size, person
from ..deps import AppMetrics, Pool
from ..metrics import Metrics
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair

MAX_ROWS = 1_000_000  # the hard cap: the largest table a profile seeds (standard, talk)
BATCH_ROWS = 1_000  # rows per cursor fetch and per chunk sent: what a streamed export holds
JSON = "application/json"
JSON_LINES = "application/x-ndjson"


class LedgerRow(Body):
    """One exported row (an account's ledger entry)."""

    id: int
    account: str
    kind: str
    amount_cents: int
    currency: str
    memo: str
    created_at: str


pair = Pair(
    name="stream_export",
    title="Buffered vs streamed export",
    summary="N rows as JSON: fetched, listed and serialized first vs a server-side cursor streamed.",
    knob=Knob("rows", "rows exported", "rows"),
    sizes={
        "test": {"rows": 20_000},
        "quick": {"rows": 100_000},
        "standard": {"rows": MAX_ROWS},
        "talk": {"rows": MAX_ROWS},
    },
    # Peak memory is the lesson's counter; rows_in_memory is why.
    counters=["peak_rss", "rows_in_memory", "response_bytes"],
    equivalence="jsonlines",
    body=list[LedgerRow],
)

ROWS_IN_MEMORY = pair.counter(
    "rows_in_memory",
    "The most rows an export request held in the server's memory at once",
    label="rows held at once",
    unit="rows",
)

EXPORT_SQL = (
    "SELECT id, account, kind, amount_cents, currency, memo, created_at"
    " FROM export_rows ORDER BY id LIMIT $1"
)

RowCount = Annotated[int, Query(ge=1, le=MAX_ROWS, description="rows to export")]


def _row(record: asyncpg.Record) -> bytes:
    return orjson.dumps(dict(record))


@pair.variant("bad")
async def buffered(pool: Pool, metrics: AppMetrics, rows: RowCount) -> Response:
    """fetch() every row, build the list, serialize, send: all N rows in memory at once."""
    async with pool.acquire() as conn:
        records = await conn.fetch(EXPORT_SQL, rows)
    body = orjson.dumps([dict(r) for r in records])
    metrics.inc(ROWS_IN_MEMORY, len(records))
    return Response(body, media_type=JSON)


@pair.variant("good")
async def cursor_array(pool: Pool, metrics: AppMetrics, rows: RowCount) -> StreamingResponse:
    """Server-side cursor, a JSON array streamed in chunks of 1,000 rows."""

    async def chunks() -> AsyncIterator[bytes]:
        opening = b"["  # travels with the first batch; the later ones open with a comma
        async for batch in _batches(pool, metrics, rows):
            yield opening + b",".join(_row(r) for r in batch)
            opening = b","
        yield b"]" if opening == b"," else b"[]"

    return StreamingResponse(chunks(), media_type=JSON)


@pair.variant("good", media_type=JSON_LINES)
async def cursor_lines(pool: Pool, metrics: AppMetrics, rows: RowCount) -> StreamingResponse:
    """Server-side cursor, JSON lines streamed in chunks of 1,000 rows."""

    async def lines() -> AsyncIterator[bytes]:
        async for batch in _batches(pool, metrics, rows):
            yield b"".join(_row(r) + b"\n" for r in batch)

    return StreamingResponse(lines(), media_type=JSON_LINES)


async def _batches(
    pool: asyncpg.Pool, metrics: Metrics, rows: int
) -> AsyncIterator[list[asyncpg.Record]]:
    """The rows, BATCH_ROWS at a time, from a server-side cursor.

    PostgreSQL keeps a cursor only inside a transaction; the connection stays out of the pool
    until the last batch is read (or the client goes away and the generator is closed).
    """
    held = 0
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        cursor = await conn.cursor(EXPORT_SQL, rows)
        while batch := await cursor.fetch(BATCH_ROWS):
            held = max(held, len(batch))
            yield batch
    metrics.inc(ROWS_IN_MEMORY, held)


# Seed data: ledger entries, about 150 bytes of JSON each.
TABLE = "export_rows"
START = datetime(2025, 1, 1)
YEAR_S = 365 * 24 * 3600
KINDS = ("deposit", "withdrawal", "transfer", "fee", "refund")
CURRENCIES = ("EUR", "USD", "GBP", "JPY")


@pair.table(
    TABLE,
    """CREATE TABLE export_rows (
        id           bigint    PRIMARY KEY,
        account      text      NOT NULL,
        kind         text      NOT NULL,
        amount_cents bigint    NOT NULL,
        currency     text      NOT NULL,
        memo         text      NOT NULL,
        created_at   timestamp NOT NULL
    )""",
)
def _export_rows(
    size: Size, rng: random.Random
) -> Iterator[tuple[int, str, str, int, str, str, datetime]]:
    for row_id in range(1, size["rows"] + 1):
        yield (
            row_id,
            person(rng),
            rng.choice(KINDS),
            rng.randint(-500_000, 500_000),
            rng.choice(CURRENCIES),
            " ".join(rng.choices(WORDS, k=rng.randint(3, 8))),
            START + timedelta(seconds=rng.randrange(YEAR_S)),
        )


# The micro benchmark (docs/architecture.md, "The micro suite"): the export's work without
# HTTP, on the servers directly: one query and the serializer against the cursor's round trips
# and per-batch chunks. Both return the bytes the client gets (the same JSON array).
MICRO_ROWS = 10_000


@pair.micro("buffered", knob=MICRO_ROWS)
async def _micro_buffered(on: MicroServers) -> bytes:
    async with on.pool.acquire() as conn:
        records = await conn.fetch(EXPORT_SQL, MICRO_ROWS)
    return orjson.dumps([dict(r) for r in records])


@pair.micro("cursor_array", knob=MICRO_ROWS)
async def _micro_cursor_array(on: MicroServers) -> bytes:
    chunks = []
    opening = b"["
    async for batch in _batches(on.pool, on.metrics, MICRO_ROWS):
        chunks.append(opening + b",".join(_row(r) for r in batch))
        opening = b","
    chunks.append(b"]" if opening == b"," else b"[]")
    return b"".join(chunks)


pair.exercise(
    reference="cursor_lines",
    task="""Export the same rows as `buffered` (the first `rows` rows of `export_rows` by id,
    every column) without holding them all: open a transaction, read them through a
    server-side cursor (asyncpg's `conn.cursor(...)`, `await cursor.fetch(1000)`) and return a
    StreamingResponse that yields each batch as JSON lines (one `orjson.dumps(dict(row))` and
    a newline per row, media_type="application/x-ndjson") as soon as it is read.""",
    knob=10_000,
    min_ratio=5,
)
