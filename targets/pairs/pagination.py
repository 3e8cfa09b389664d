"""OFFSET vs keyset pagination: page k of a feed, newest first.

`LIMIT n OFFSET k` reads and throws away the k rows before the page, so a deep page costs O(k)
even with a perfect index. Keyset ("seek") pagination remembers where the last page ended and
asks the index for the rows after that key: O(n) at any depth. The sort key is
(created_at, id), not created_at alone: items share timestamps, and only a unique key gives a
total order, so no row is skipped or repeated at a page boundary.

Both variants fetch n+1 rows to learn whether a next page exists (no COUNT(*)), and return
byte-identical JSON for the same position: {"items": [...], "next_cursor": str | null}. The
helper route /pagination/cursor?offset=K returns the cursor that makes the keyset variant
serve the same page as offset=K, so a benchmark can compare the two at the same depth.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import HTTPException, Query

from ..data import WORDS, Size, title
from ..deps import Pool
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference

DEFAULT_LIMIT = 20
MAX_LIMIT = 100  # bounded: a page size is user input
MAX_OFFSET = 10_000_000  # bounded too: an unbounded OFFSET is a denial-of-service knob
MAX_CURSOR_CHARS = 200  # a real cursor is under 80 characters; refuse to decode megabytes
MAX_BIGINT = 2**63 - 1


class Item(Body):
    id: int
    created_at: datetime
    author: str
    body: str
    likes: int


class Page(Body):
    """A page of the feed, newest first; next_cursor is null on the last page."""

    items: list[Item]
    next_cursor: str | None


class Cursor(Body):
    cursor: str | None


pair = Pair(
    name="pagination",
    title="OFFSET vs keyset pagination",
    summary="Page k of a feed: LIMIT/OFFSET reads the k skipped rows, keyset seeks past them.",
    knob=Knob("depth", "page depth (rows skipped)", "rows"),
    sizes={
        "test": {"feed_items": 20_000},
        "quick": {"feed_items": 200_000},
        "standard": {"feed_items": 1_000_000},
        "talk": {"feed_items": 1_000_000},
    },
    # The mechanism: OFFSET's buffers (and rows) per request grow with the depth while keyset's
    # stay flat; both send the same single statement.
    counters=["db_buffers", "db_rows", "queries"],
    body=Page,
    reference=Reference(
        figure="5,524 ms at offset ~1M vs 0.224 ms keyset",
        ratio=24_660.0,
        source="GitLab's pagination guidelines",
        knob=1_000_000,  # "offset ~1M": the standard and talk profiles go 990,000 deep
    ),
)

COLUMNS = "id, created_at, author, body, likes"
NEWEST_FIRST = "ORDER BY created_at DESC, id DESC"
OFFSET_SQL = f"SELECT {COLUMNS} FROM feed_items {NEWEST_FIRST} LIMIT $1 OFFSET $2"
FIRST_PAGE_SQL = f"SELECT {COLUMNS} FROM feed_items {NEWEST_FIRST} LIMIT $1"
# A row comparison, not `created_at < $1 OR (created_at = $1 AND id < $2)`: Postgres turns the
# row comparison into one index range condition, so the scan starts right at the cursor.
KEYSET_SQL = (
    f"SELECT {COLUMNS} FROM feed_items WHERE (created_at, id) < ($1, $2) {NEWEST_FIRST} LIMIT $3"
)
KEY_AT_OFFSET_SQL = f"SELECT created_at, id FROM feed_items {NEWEST_FIRST} LIMIT 1 OFFSET $1"
OLDEST_KEY_SQL = "SELECT created_at, id FROM feed_items ORDER BY created_at, id LIMIT 1"

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
After = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_CHARS, description="next_cursor of the previous page"),
]


@pair.variant("bad")
async def offset(pool: Pool, offset: Offset = 0, limit: Limit = DEFAULT_LIMIT) -> dict[str, Any]:
    """LIMIT/OFFSET: the database reads and discards every skipped row (O(depth))."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(OFFSET_SQL, limit + 1, offset)
    return _page(rows, limit)


@pair.variant("good", responses={400: "`after` is not a cursor this feed issued"})
async def keyset(pool: Pool, after: After = None, limit: Limit = DEFAULT_LIMIT) -> dict[str, Any]:
    """Keyset: seek past the last (created_at, id) on the index (O(page), any depth)."""
    # Decode before acquiring a connection: a bad cursor never costs a database round trip.
    # An empty cursor means the first page, so a URL template can always carry `after=`.
    key = decode_cursor(after) if after else None
    async with pool.acquire() as conn:
        if key is None:
            rows = await conn.fetch(FIRST_PAGE_SQL, limit + 1)
        else:
            rows = await conn.fetch(KEYSET_SQL, *key, limit + 1)
    return _page(rows, limit)


@pair.route("cursor", body=Cursor)
async def cursor(pool: Pool, offset: Offset = 0) -> dict[str, str | None]:
    """The cursor after which keyset serves the page that offset=K serves (null for K=0).

    Past the end it is the oldest item's cursor, so keyset returns the same empty page.
    """
    if offset == 0:
        return {"cursor": None}
    async with pool.acquire() as conn:
        key = await conn.fetchrow(KEY_AT_OFFSET_SQL, offset - 1)
        if key is None:
            key = await conn.fetchrow(OLDEST_KEY_SQL)
    return {"cursor": None if key is None else encode_cursor(key["created_at"], key["id"])}


# The cursor and the page body: one serializer for both variants.


def encode_cursor(created_at: datetime, item_id: int) -> str:
    """The opaque cursor: unpadded urlsafe base64 of the JSON ["<ISO created_at>", id].

    JSON keeps it debuggable (base64-decode it and read it) and ISO keeps microseconds exact.
    Padding is dropped so the cursor needs no escaping in a query string.
    """
    raw = json.dumps([created_at.isoformat(), item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (created_at, id) key in a cursor; a 400 naming the defect if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        # validate=True: the default silently drops non-alphabet characters.
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
        key = json.loads(raw)
    except (binascii.Error, ValueError) as e:  # ValueError covers JSON and UTF-8 errors
        raise _bad_cursor("not urlsafe base64 of JSON") from e
    if not (isinstance(key, list) and len(key) == 2):
        raise _bad_cursor('expected ["<ISO timestamp>", <id>]')
    created_at, item_id = key
    # bool is an int in Python; true/false is not an id.
    if not isinstance(item_id, int) or isinstance(item_id, bool) or not 1 <= item_id <= MAX_BIGINT:
        raise _bad_cursor("id must be a positive 64-bit integer")
    if not isinstance(created_at, str):
        raise _bad_cursor("created_at must be an ISO 8601 string")
    try:
        when = datetime.fromisoformat(created_at)
    except ValueError as e:
        raise _bad_cursor("created_at is not an ISO 8601 timestamp") from e
    if when.tzinfo is None:  # a naive time would be read in the server's zone: ambiguous
        raise _bad_cursor("created_at needs a UTC offset")
    return when, item_id


def _bad_cursor(reason: str) -> HTTPException:
    return HTTPException(status_code=400, detail=f"invalid cursor: {reason}")


def _page(rows: list[asyncpg.Record], limit: int) -> dict[str, Any]:
    """The page body; the (limit+1)-th row, if fetched, only says that a next page exists."""
    items = rows[:limit]
    has_more = len(rows) > limit
    return {
        "items": [
            {
                "id": r["id"],
                "created_at": r["created_at"].isoformat(),
                "author": r["author"],
                "body": r["body"],
                "likes": r["likes"],
            }
            for r in items
        ],
        "next_cursor": encode_cursor(items[-1]["created_at"], items[-1]["id"])
        if has_more
        else None,
    }


# Seed data: whole-second timestamps, 0..MAX_GAP_S apart, so about one item in four shares its
# timestamp with the previous one (a batch import, a busy second): why the key needs the id too.
FEED_START = datetime(2025, 1, 1, tzinfo=UTC)
MAX_GAP_S = 3
BODY_WORDS = (6, 24)


@pair.table(
    "feed_items",
    """CREATE TABLE feed_items (
        id         bigint      PRIMARY KEY,
        created_at timestamptz NOT NULL,
        author     text        NOT NULL,
        body       text        NOT NULL,
        likes      integer     NOT NULL
    )""",
    # The index both variants sort by: same columns, same direction as ORDER BY. It serves
    # OFFSET too (the comparison is fair), but OFFSET must still walk k entries to skip them.
    indexes="CREATE INDEX feed_items_created_at_id_idx ON feed_items (created_at DESC, id DESC)",
)
def _feed_items(size: Size, rng: random.Random) -> Iterator[tuple[int, datetime, str, str, int]]:
    clock = 0
    for item_id in range(1, size["feed_items"] + 1):
        clock += rng.randint(0, MAX_GAP_S)
        author = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}"
        body = " ".join(rng.choices(WORDS, k=rng.randint(*BODY_WORDS)))
        yield (
            item_id,
            FEED_START + timedelta(seconds=clock),
            author,
            f"{title(rng)}: {body}",
            rng.randint(0, 500),
        )


# The micro benchmark (docs/architecture.md, "The micro suite"): OFFSET against keyset SQL on
# asyncpg directly, no HTTP, at one depth that the test profile's feed holds too.
MICRO_DEPTH = 10_000


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_cursor(on: MicroServers) -> AsyncIterator[str | None]:
    """The cursor of the page at MICRO_DEPTH, looked up once (as the load's [prepare] does)."""
    yield (await cursor(on.pool, offset=MICRO_DEPTH))["cursor"]


@pair.micro("offset", knob=MICRO_DEPTH)
async def _micro_offset(on: MicroServers) -> Any:
    return await offset(on.pool, offset=MICRO_DEPTH, limit=DEFAULT_LIMIT)


@pair.micro("keyset", knob=MICRO_DEPTH)
async def _micro_keyset(on: MicroServers) -> Any:
    return await keyset(on.pool, after=on.resource, limit=DEFAULT_LIMIT)


# The workshop exercise (docs/architecture.md, "Exercises"): seek instead of skipping.
pair.exercise(
    reference="keyset",
    task="""Return the same page as `offset` at the same position: `limit` items of
    `feed_items`, newest first by (created_at, id), and the next cursor, without making the
    database read and throw away the rows before the page. `after` is the cursor of the last
    item seen (decode_cursor gives its (created_at, id); empty: the first page): seek past it
    on the index.""",
    knob=190_000,
    min_ratio=4.0,
    order=50,  # the workshop's order (docs/workshop.md)
)
