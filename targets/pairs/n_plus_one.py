"""N+1 queries: a page of authors with their books.

The bad variant is the loop every ORM's lazy loading writes for you: one query for the page,
then one more per row. Its cost is N database round trips, so it grows with the page size while
the fixes stay nearly flat. All four variants return byte-identical JSON: authors by id, each
author's books by id.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Iterator
from typing import Annotated, Any

import asyncpg
from aiodataloader import DataLoader
from fastapi import Query

from ..data import COUNTRIES, Size, person, title
from ..deps import Pool
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference, Shows

MAX_AUTHORS = 500  # bounded: a page size is user input


class Book(Body):
    id: int
    title: str
    published: int
    pages: int


class AuthorWithBooks(Body):
    id: int
    name: str
    country: str
    books: list[Book]


pair = Pair(
    name="n_plus_one",
    title="N+1 queries",
    summary="A page of N authors with their books: 1+N queries vs one JOIN or one batch.",
    knob=Knob("n", "authors per page", "authors"),
    sizes={
        "test": {"authors": 300, "books_per_author": 3},
        "quick": {"authors": 2000, "books_per_author": 4},
        "standard": {"authors": 20_000, "books_per_author": 4},
        "talk": {"authors": 20_000, "books_per_author": 4},
    },
    counters=["queries"],
    body=list[AuthorWithBooks],  # a page: authors by id, each one's books by id
    reference=Reference(
        figure="about 4x",
        ratio=4.0,
        source="SQLAlchemy's examples/performance: lazy vs joined loading",
    ),
)

AuthorsPerPage = Annotated[int, Query(ge=1, le=MAX_AUTHORS, description="authors per page")]

AUTHORS_SQL = "SELECT id, name, country FROM authors ORDER BY id LIMIT $1"
BOOK_COLUMNS = "id, title, published, pages"


@pair.variant("bad")
async def lazy(pool: Pool, n: AuthorsPerPage) -> list[dict[str, Any]]:
    """Lazy loading: one query for the authors, then one per author (1+N round trips)."""
    async with pool.acquire() as conn:
        authors = await conn.fetch(AUTHORS_SQL, n)
        page = []
        for author in authors:
            books = await conn.fetch(
                f"SELECT {BOOK_COLUMNS} FROM books WHERE author_id = $1 ORDER BY id", author["id"]
            )
            page.append(_author(author, [_book(b) for b in books]))
        return page


@pair.variant("good")
async def join(pool: Pool, n: AuthorsPerPage) -> list[dict[str, Any]]:
    """One LEFT JOIN: a single round trip; author columns repeat on every book row."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """
            SELECT a.id AS author_id, a.name, a.country,
                   b.id, b.title, b.published, b.pages
            FROM (SELECT id, name, country FROM authors ORDER BY id LIMIT $1) AS a
            LEFT JOIN books AS b ON b.author_id = a.id
            ORDER BY a.id, b.id
            """,
            n,
        )
    page: list[dict[str, Any]] = []
    for row in rows:
        if not page or page[-1]["id"] != row["author_id"]:
            page.append(
                {
                    "id": row["author_id"],
                    "name": row["name"],
                    "country": row["country"],
                    "books": [],
                }
            )
        if row["id"] is not None:  # LEFT JOIN: an author with no books has one NULL row
            page[-1]["books"].append(_book(row))
    return page


@pair.variant("good")
async def batched(pool: Pool, n: AuthorsPerPage) -> list[dict[str, Any]]:
    """Two queries: the authors, then all their books at once with = ANY($1)."""
    async with pool.acquire() as conn:
        authors = await conn.fetch(AUTHORS_SQL, n)
        books = await _books_by_author(conn, [a["id"] for a in authors])
    return [_author(a, books.get(a["id"], [])) for a in authors]


@pair.variant("good")
async def dataloader(pool: Pool, n: AuthorsPerPage) -> list[dict[str, Any]]:
    """A per-request DataLoader: code that loads one author's books at a time, batched into 1 query."""
    async with pool.acquire() as conn:

        async def load_books(ids: list[int]) -> list[list[dict[str, Any]]]:
            grouped = await _books_by_author(conn, ids)
            return [grouped.get(i, []) for i in ids]

        # One loader per request: its cache must never outlive the request (stale data, leaks).
        loader = DataLoader(load_books)
        authors = await conn.fetch(AUTHORS_SQL, n)
        books = await asyncio.gather(*(loader.load(a["id"]) for a in authors))
    return [_author(a, b) for a, b in zip(authors, books, strict=True)]


async def _books_by_author(
    conn: asyncpg.Connection, ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    rows = await conn.fetch(
        f"SELECT author_id, {BOOK_COLUMNS} FROM books WHERE author_id = ANY($1::int[])"
        " ORDER BY author_id, id",
        ids,
    )
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[row["author_id"]].append(_book(row))
    return grouped


def _author(row: asyncpg.Record, books: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "country": row["country"], "books": books}


def _book(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "published": row["published"],
        "pages": row["pages"],
    }


# Seed data: the pair's own tables.


@pair.table(
    "authors",
    """CREATE TABLE authors (
        id      integer PRIMARY KEY,
        name    text    NOT NULL,
        country text    NOT NULL,
        born    integer NOT NULL
    )""",
)
def _authors(size: Size, rng: random.Random) -> Iterator[tuple[int, str, str, int]]:
    for author_id in range(1, size["authors"] + 1):
        yield author_id, person(rng), rng.choice(COUNTRIES), rng.randint(1900, 2000)


@pair.table(
    "books",
    """CREATE TABLE books (
        id        integer PRIMARY KEY,
        author_id integer NOT NULL REFERENCES authors (id),
        title     text    NOT NULL,
        published integer NOT NULL,
        pages     integer NOT NULL
    )""",
    indexes="CREATE INDEX books_author_id_idx ON books (author_id, id)",
)
def _books(size: Size, rng: random.Random) -> Iterator[tuple[int, int, str, int, int]]:
    # Ids in author order, so a page of authors touches a contiguous range of books. Between
    # 0 and twice the mean per author: some authors have none (the LEFT JOIN's NULL row).
    book_id = 0
    mean = size["books_per_author"]
    for author_id in range(1, size["authors"] + 1):
        for _ in range(rng.randint(0, 2 * mean)):
            book_id += 1
            yield book_id, author_id, title(rng), rng.randint(1950, 2025), rng.randint(80, 900)


# The micro benchmark (docs/architecture.md, "The micro suite"): the loop against the JOIN on
# asyncpg directly, no HTTP, at the quick profile's largest page.
MICRO_AUTHORS = 200


@pair.micro("lazy", knob=MICRO_AUTHORS)
async def _micro_lazy(on: MicroServers) -> Any:
    return await lazy(on.pool, MICRO_AUTHORS)


@pair.micro("join", knob=MICRO_AUTHORS)
async def _micro_join(on: MicroServers) -> Any:
    return await join(on.pool, MICRO_AUTHORS)


# The workshop exercise (docs/architecture.md, "Exercises"): write the batch that replaces the loop.
pair.exercise(
    reference="batched",
    task="""Return the same page as `lazy`: the first n authors by id from `authors`, each with
    its books from `books` by id (an author with none gets []), in a constant number of SQL
    statements whatever n: at most 2, not one per author.""",
    knob=200,
    min_ratio=2.0,
    shows=[
        Shows("queries", "the loop still queries per author: fetch every author's books at once")
    ],
    order=10,  # the workshop's order (docs/workshop.md)
)
