"""N+1 queries: a page of authors with their books.

The bad variant is the loop every ORM's lazy loading writes for you: one query for the page,
then one more per row. Its cost is N database round trips, so it grows with the page size while
the fixes stay nearly flat. All four variants return byte-identical JSON: authors by id, each
author's books by id.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Annotated, Any

import asyncpg
from aiodataloader import DataLoader
from fastapi import Query

from ..deps import Pool
from ..registry import Knob, Pair, register

MAX_AUTHORS = 500  # bounded: a page size is user input

pair = register(
    Pair(
        name="n_plus_one",
        title="N+1 queries",
        summary="A page of N authors with their books: 1+N queries vs one JOIN or one batch.",
        knob=Knob("n", "authors per page", "authors"),
    )
)

AuthorsPerPage = Annotated[int, Query(ge=1, le=MAX_AUTHORS, description="authors per page")]

AUTHORS_SQL = "SELECT id, name, country FROM authors ORDER BY id LIMIT $1"
BOOK_COLUMNS = "id, title, published, pages"


def _author(row: asyncpg.Record, books: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "country": row["country"], "books": books}


def _book(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "published": row["published"],
        "pages": row["pages"],
    }


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
