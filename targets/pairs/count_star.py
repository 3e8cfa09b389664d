"""COUNT(*) on every page vs knowing only whether there is a next page.

A list endpoint that answers "is there a next page?" from an exact `COUNT(*)` of every row the
filter matches pays for all of them on every page: the count visits each matching row (or index
entry), so page 1 of a filter matching a million rows costs a million rows, although the page
shows twenty. Fetching one row more than the page (`LIMIT n+1`) answers the same question from
the rows the page needed anyway. A count capped at COUNT_CAP rows (what a UI shows as "1,000+
results") sits between the two: bounded, but still a second statement.

Every variant returns the same body, {"items": [...], "has_next": bool}: the exact and capped
counts are used only to decide has_next, which is all the client reads of them. The data is
built for the knob: tag T has exactly T items (tags 10, 100, ..., up to the profile's
`max_matching`, shuffled through the table), so `?tag=10000` matches 10,000 rows. The pair is
named, like select_star, after the bad variant's SQL.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Query

from ..data import Size, title
from ..deps import AppMetrics, Pool
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference, Shows
from ._maintenance import vacuum

DEFAULT_LIMIT = 20
MAX_LIMIT = 100  # bounded: a page size is user input
# Bounded too, and so that the capped count always reaches past the page asked for
# (MAX_PAGE * MAX_LIMIT <= COUNT_CAP): deep pages are the pagination pair's lesson.
MAX_PAGE = 10
COUNT_CAP = 1000  # the capped variant counts at most this many rows and one more ("1,000+")
MAX_TAG = 10_000_000  # no tag is larger; an unknown tag matches nothing (an empty page)
TAG_SIZES = (10, 100, 1_000, 10_000, 100_000, 1_000_000)  # tag T has T items


class Item(Body):
    id: int
    created_at: datetime
    title: str
    price_cents: int


class Page(Body):
    """A page of a tag's items, newest first; has_next says whether a next page exists."""

    items: list[Item]
    has_next: bool


pair = Pair(
    name="count_star",
    title="COUNT(*) per page vs LIMIT n+1",
    summary="Page 1 of a filter: an exact COUNT(*) visits every matching row, n+1 rows do not.",
    knob=Knob("matching", "rows matching the filter", "rows"),
    sizes={
        # The largest tag seeded: the table holds every tag of TAG_SIZES up to it.
        "test": {"max_matching": 10_000},
        "quick": {"max_matching": 100_000},
        "standard": {"max_matching": 1_000_000},
        "talk": {"max_matching": 1_000_000},
    },
    # The mechanism: the exact count visits every matching row per request (rows_counted = the
    # knob), and the buffers it reads grow with them; LIMIT n+1 counts nothing.
    counters=["rows_counted", "db_buffers", "queries"],
    body=Page,
    reference=Reference(
        figure="41 ms vs 0.35 ms (page with COUNT(*) vs LIMIT n+1, on 1M rows)",
        ratio=41 / 0.35,
        source="issue 13's check with psql outside pairbench",
        # Read as a filter matching all of the million rows: the check counted 1M rows.
        knob=1_000_000,
    ),
)
ROWS_COUNTED = pair.counter(
    "rows_counted",
    "Rows a COUNT(*) went through to answer a page",
    label="rows counted",
    unit="rows",
)

COLUMNS = "id, created_at, title, price_cents"
PAGE_SQL = (
    f"SELECT {COLUMNS} FROM count_items WHERE tag = $1"
    " ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
)
COUNT_SQL = "SELECT count(*) FROM count_items WHERE tag = $1"
# The LIMIT inside stops the scan after $2 rows, whatever the tag matches.
CAPPED_COUNT_SQL = (
    "SELECT count(*) FROM (SELECT 1 FROM count_items WHERE tag = $1 LIMIT $2) AS capped"
)

Tag = Annotated[int, Query(ge=1, le=MAX_TAG, description="tag T has exactly T items")]
PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE, description="page, from 1")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]


@pair.variant("bad")
async def exact(
    pool: Pool, metrics: AppMetrics, tag: Tag, page: PageNumber = 1, limit: Limit = DEFAULT_LIMIT
) -> dict[str, Any]:
    """Exact COUNT(*) of every matching row, then the page (O(matching rows))."""
    offset = (page - 1) * limit
    async with pool.acquire() as conn:
        total = await conn.fetchval(COUNT_SQL, tag)
        rows = await conn.fetch(PAGE_SQL, tag, limit, offset)
    metrics.inc(ROWS_COUNTED, total)
    return _page(rows, has_next=total > offset + limit)


@pair.variant("middle")
async def capped(
    pool: Pool, metrics: AppMetrics, tag: Tag, page: PageNumber = 1, limit: Limit = DEFAULT_LIMIT
) -> dict[str, Any]:
    """Capped count: COUNT(*) of at most 1,001 rows ("1,000+"), then the page."""
    offset = (page - 1) * limit
    async with pool.acquire() as conn:
        # offset + limit <= COUNT_CAP (the bounds above), so the capped count still tells
        # whether a row exists past this page.
        counted = await conn.fetchval(CAPPED_COUNT_SQL, tag, COUNT_CAP + 1)
        rows = await conn.fetch(PAGE_SQL, tag, limit, offset)
    metrics.inc(ROWS_COUNTED, counted)
    return _page(rows, has_next=counted > offset + limit)


@pair.variant("good")
async def limit_plus_one(
    pool: Pool, tag: Tag, page: PageNumber = 1, limit: Limit = DEFAULT_LIMIT
) -> dict[str, Any]:
    """LIMIT n+1: one row past the page says whether a next page exists (O(page))."""
    offset = (page - 1) * limit
    async with pool.acquire() as conn:
        rows = await conn.fetch(PAGE_SQL, tag, limit + 1, offset)
    return _page(rows[:limit], has_next=len(rows) > limit)


def _page(rows: list[asyncpg.Record], *, has_next: bool) -> dict[str, Any]:
    """The page body, one serializer for every variant."""
    return {
        "items": [
            {
                "id": r["id"],
                "created_at": r["created_at"].isoformat(),
                "title": r["title"],
                "price_cents": r["price_cents"],
            }
            for r in rows
        ],
        "has_next": has_next,
    }


@pair.lifespan
@contextlib.asynccontextmanager
async def _visibility(app: FastAPI) -> AsyncIterator[None]:
    """Vacuum the table once at start: the counts' plans must not change mid-run when
    autovacuum first sets the visibility map (index-only scans skip the heap after it)."""
    await vacuum(app.state.pool, [TABLE])
    yield


# Seed data: every tag of TAG_SIZES up to the profile's max_matching, each with exactly as many
# items as its number, in a shuffled order, so a tag's rows are spread through the table as a
# real filter's are. Timestamps are whole seconds over a year; the id breaks ties.
TABLE = "count_items"
START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_S = 365 * 24 * 3600


@pair.table(
    TABLE,
    """CREATE TABLE count_items (
        id          bigint      PRIMARY KEY,
        tag         integer     NOT NULL,
        created_at  timestamptz NOT NULL,
        title       text        NOT NULL,
        price_cents integer     NOT NULL
    )""",
    # The index every variant uses: the page reads its first entries for the tag, the count
    # walks all of them (an index-only scan once the table is vacuumed).
    indexes="CREATE INDEX count_items_tag_created_idx ON count_items (tag, created_at DESC, id DESC)",
)
def _count_items(size: Size, rng: random.Random) -> Iterator[tuple[int, int, datetime, str, int]]:
    tags = [t for t in TAG_SIZES if t <= size["max_matching"] for _ in range(t)]
    rng.shuffle(tags)
    for item_id, tag in enumerate(tags, start=1):
        yield (
            item_id,
            tag,
            START + timedelta(seconds=rng.randrange(YEAR_S)),
            title(rng),
            rng.randint(100, 100_000),
        )


# The micro benchmark (docs/architecture.md, "The micro suite"): the two statements against the
# one, on asyncpg directly, at a tag every profile holds.
MICRO_MATCHING = 10_000


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_visibility(on: MicroServers) -> AsyncIterator[None]:
    """Vacuumed as the app's start vacuums it, so the cores count through the same plans."""
    await vacuum(on.pool, [TABLE])
    yield


@pair.micro("exact", knob=MICRO_MATCHING)
async def _micro_exact(on: MicroServers) -> Any:
    return await exact(on.pool, on.metrics, tag=MICRO_MATCHING)


@pair.micro("limit_plus_one", knob=MICRO_MATCHING)
async def _micro_limit_plus_one(on: MicroServers) -> Any:
    return await limit_plus_one(on.pool, tag=MICRO_MATCHING)


pair.exercise(
    reference="limit_plus_one",
    task="""Return the same page as `exact` (the tag's items from `count_items`, newest first,
    and has_next: whether a row exists past this page), but at a cost that does not grow with
    the rows the tag matches: one SQL statement per request, and no COUNT(*) of the matching
    rows (if you count rows, report them with metrics.inc(ROWS_COUNTED, rows)).""",
    knob=100_000,
    min_ratio=2.0,
    shows=[
        Shows(
            "rows_counted",
            "has_next still comes from counting every matching row: the page's own rows can"
            " tell whether another one follows",
        ),
        Shows("queries", "a second statement per page: answer has_next from the page's query"),
    ],
)
