"""SELECT * of wide rows vs the columns the client needs.

A list of items shows each item's id and name, but the query asks for `*`: every row also
brings its `details`, a wide text the list never shows, which PostgreSQL reads from its TOAST
table and decompresses, sends over the socket, and the driver decodes into a Python string, only
for the serializer to drop it (what an ORM that loads whole entities does behind a response
model). Naming the columns leaves the wide one on the server; a sparse fieldset
(`?fields=id,name`, checked against a whitelist) lets the client name them; a covering index
(`INCLUDE (name)`) answers the same query from the index alone (an index-only scan: no heap,
no TOAST).

Every variant returns the same body, a list of {"id", "name"}. The data is built for the knob:
the items of width W carry exactly W bytes of ASCII details (widths 10, 100, ..., up to the
profile's `max_width`), so `?width=10000` lists items of 10 KB each. The covering variant reads a
twin table with the same rows and the covering index, so that the other variants, on a table
without it, cannot use it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, HTTPException, Query

from ..data import WORDS, Size, title
from ..deps import AppMetrics, Pool
from ..metrics import Metrics
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference, Shows
from ._maintenance import vacuum

DEFAULT_LIMIT = 200  # the reference's page: 200 rows
MAX_LIMIT = 500  # bounded: a page size is user input
MAX_WIDTH = 1_000_000  # no width is larger; an unknown width lists nothing
MAX_FIELDS_CHARS = 100  # all four fields, each named once, take 21
# The fields an item has, in the order a response lists them; `fields` may name only these.
FIELDS = ("id", "width", "name", "details")
SUMMARY = ("id", "name")  # what the list shows
DEFAULT_FIELDS = ",".join(SUMMARY)
WIDTHS = (10, 100, 1_000, 3_000, 10_000, 30_000)  # bytes of details, one group of rows each


class ItemFields(Body):
    """An item with the fields asked for (by default, and for every variant but fieldset's
    `fields`, id and name)."""

    id: int | None = None
    width: int | None = None
    name: str | None = None
    details: str | None = None


pair = Pair(
    name="select_star",
    title="SELECT * vs the needed columns",
    summary="A list of wide rows: SELECT * fetches the wide column the list never shows.",
    knob=Knob("width", "bytes of the unused column per row", "bytes"),
    sizes={
        # Items per width, and the widest group seeded (every width of WIDTHS up to it).
        "test": {"rows_per_width": 250, "max_width": 10_000},
        "quick": {"rows_per_width": 1_000, "max_width": 10_000},
        "standard": {"rows_per_width": 1_000, "max_width": 30_000},
        "talk": {"rows_per_width": 1_000, "max_width": 30_000},
    },
    # The mechanism: SELECT * fetches limit x width bytes the response drops, and reads the
    # TOAST pages that hold them; the bytes sent to the client are the same for every variant.
    counters=["unused_bytes", "db_buffers", "response_bytes", "queries"],
    body=list[ItemFields],
    reference=Reference(
        figure="1.5 ms vs 0.06 ms (SELECT * vs the needed columns, 200 rows of 10 KB)",
        ratio=1.5 / 0.06,
        source="issue 13's check with psql outside pairbench",
        knob=10_000,
    ),
)
UNUSED_BYTES = pair.counter(
    "unused_bytes",
    "Bytes of text fetched from PostgreSQL that the response does not carry",
    label="text fetched and dropped",
    unit="bytes",
)

STAR_SQL = "SELECT * FROM star_items WHERE width = $1 ORDER BY id LIMIT $2"
COLUMNS_SQL = "SELECT id, name FROM star_items WHERE width = $1 ORDER BY id LIMIT $2"
COVERING_SQL = "SELECT id, name FROM star_items_covered WHERE width = $1 ORDER BY id LIMIT $2"

Width = Annotated[int, Query(ge=1, le=MAX_WIDTH, description="items with this many bytes")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
Fields = Annotated[
    str,
    Query(
        max_length=MAX_FIELDS_CHARS,
        description=f"comma-separated fields to return, of: {', '.join(FIELDS)}",
    ),
]


@pair.variant("bad")
async def star(
    pool: Pool, metrics: AppMetrics, width: Width, limit: Limit = DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    """SELECT *: every column, the wide details too, for a list that shows id and name."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(STAR_SQL, width, limit)
    return _items(rows, SUMMARY, metrics)


@pair.variant("good")
async def columns(
    pool: Pool, metrics: AppMetrics, width: Width, limit: Limit = DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    """Needed columns: SELECT id, name (the wide column never leaves the server)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(COLUMNS_SQL, width, limit)
    return _items(rows, SUMMARY, metrics)


@pair.variant("good", responses={400: "`fields` names a field items do not have"})
async def fieldset(
    pool: Pool,
    metrics: AppMetrics,
    width: Width,
    fields: Fields = DEFAULT_FIELDS,
    limit: Limit = DEFAULT_LIMIT,
) -> list[dict[str, Any]]:
    """Sparse fieldset: ?fields=id,name, checked against a whitelist, selects only those."""
    # Checked before acquiring a connection: a bad field never costs a round trip.
    wanted = parse_fields(fields)
    # Column names cannot be parameters: the whitelist's own strings are the only ones used.
    sql = f"SELECT {', '.join(wanted)} FROM star_items WHERE width = $1 ORDER BY id LIMIT $2"
    async with pool.acquire() as conn:
        rows = await conn.fetch(sql, width, limit)
    return _items(rows, wanted, metrics)


@pair.variant("good")
async def covering(
    pool: Pool, metrics: AppMetrics, width: Width, limit: Limit = DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    """Covering index: (width, id) INCLUDE (name) serves id, name by an index-only scan."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(COVERING_SQL, width, limit)
    return _items(rows, SUMMARY, metrics)


def parse_fields(fields: str) -> tuple[str, ...]:
    """The whitelisted fields named in `fields`, in FIELDS order; a 400 naming any other."""
    named = [f.strip() for f in fields.split(",")]
    unknown = [f for f in named if f not in FIELDS]
    if unknown:
        raise HTTPException(
            status_code=400,
            detail=f"unknown field(s) {', '.join(map(repr, unknown))} in fields"
            f" (known: {', '.join(FIELDS)})",
        )
    return tuple(f for f in FIELDS if f in named)  # a canonical order: one statement per set


def _items(
    rows: list[asyncpg.Record], fields: Sequence[str], metrics: Metrics
) -> list[dict[str, Any]]:
    """The body, one serializer for every variant; counts the text fetched and not returned."""
    unused = sum(
        len(value)  # the seeded text is ASCII: characters are bytes
        for r in rows
        for name, value in r.items()
        if name not in fields and isinstance(value, str)
    )
    if unused:
        metrics.inc(UNUSED_BYTES, unused)
    return [{name: r[name] for name in fields} for r in rows]


@pair.lifespan
@contextlib.asynccontextmanager
async def _visibility(app: FastAPI) -> AsyncIterator[None]:
    """Vacuum the tables once at start: an index-only scan skips the heap only for pages the
    visibility map marks all-visible, and seeding leaves that to autovacuum's timing."""
    await vacuum(app.state.pool, TABLES)
    yield


# Seed data: the items of every width of WIDTHS up to max_width, rows_per_width of each, in a
# shuffled order (a catalogue mixes them). The two tables must hold the same rows, and seeding
# gives each table its own random stream, so both draw from a stream of the pair's own, seeded
# by DATA_SEED: the run's --seed does not change these rows.
TABLES = ["star_items", "star_items_covered"]
DATA_SEED = 13
ITEMS_DDL = """CREATE TABLE {table} (
    id      bigint  PRIMARY KEY,
    width   integer NOT NULL,
    name    text    NOT NULL,
    details text    NOT NULL
)"""


def _item_rows(size: Size) -> Iterator[tuple[int, int, str, str]]:
    rng = random.Random(DATA_SEED)
    widths = [w for w in WIDTHS if w <= size["max_width"] for _ in range(size["rows_per_width"])]
    rng.shuffle(widths)
    # One long text of words; each row's details is a slice of it at a random start, exactly
    # `width` ASCII characters, so rows differ and seeding stays fast at any width.
    text = " ".join(rng.choices(WORDS, k=2 * max(widths, default=0) // 4 + 1))
    for item_id, width in enumerate(widths, start=1):
        start = rng.randrange(len(text) - width)
        yield item_id, width, title(rng), text[start : start + width]


@pair.table(
    "star_items",
    ITEMS_DDL.format(table="star_items"),
    # What the list's WHERE and ORDER BY need; it holds no name, so every row visits the heap.
    indexes="CREATE INDEX star_items_width_id_idx ON star_items (width, id)",
)
def _star_items(size: Size, rng: random.Random) -> Iterator[tuple[int, int, str, str]]:
    return _item_rows(size)


@pair.table(
    "star_items_covered",
    ITEMS_DDL.format(table="star_items_covered"),
    indexes=(
        "CREATE INDEX star_items_covered_width_id_idx"
        " ON star_items_covered (width, id) INCLUDE (name)"
    ),
)
def _star_items_covered(size: Size, rng: random.Random) -> Iterator[tuple[int, int, str, str]]:
    return _item_rows(size)


# The micro benchmark (docs/architecture.md, "The micro suite"): SELECT * against the covering
# index on asyncpg directly, 200 rows of 10 KB (the reference's case; every profile holds it).
MICRO_WIDTH = 10_000


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_visibility(on: MicroServers) -> AsyncIterator[None]:
    """Vacuumed as the app's start vacuums them, so the covering core scans the index alone."""
    await vacuum(on.pool, TABLES)
    yield


@pair.micro("star", knob=MICRO_WIDTH)
async def _micro_star(on: MicroServers) -> Any:
    return await star(on.pool, on.metrics, width=MICRO_WIDTH)


@pair.micro("columns", knob=MICRO_WIDTH)
async def _micro_columns(on: MicroServers) -> Any:
    return await columns(on.pool, on.metrics, width=MICRO_WIDTH)


@pair.micro("covering", knob=MICRO_WIDTH)
async def _micro_covering(on: MicroServers) -> Any:
    return await covering(on.pool, on.metrics, width=MICRO_WIDTH)


pair.exercise(
    reference="columns",
    task="""Return the same list as `star` (the first `limit` items of the width from
    `star_items` by id, each as {id, name}), without fetching from PostgreSQL any column the
    list does not return: its `details` are `width` bytes a row.""",
    knob=10_000,
    min_ratio=1.5,
    shows=[
        Shows(
            "unused_bytes",
            "the query still fetches the wide details column the list drops: ask only for what"
            " it returns",
        )
    ],
)
