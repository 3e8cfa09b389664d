"""The schema every pair reads, and its deterministic seed data (loaded with COPY).

The same (version, size, seed) always produces byte-identical tables, so two runs, or two
machines, measure the same data. Seeding is skipped when the database already holds it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import asyncpg

DATASET_VERSION = 1  # bump when the schema or the generator changes
DEFAULT_SEED = 20261124
META_TABLE = "pairbench_dataset"

COUNTRIES = ("AR", "BR", "CA", "DE", "ES", "FR", "IN", "IT", "JP", "KE", "MX", "NG", "PL", "US")
WORDS = (
    "silent",
    "river",
    "glass",
    "orbit",
    "paper",
    "ember",
    "harbor",
    "cedar",
    "signal",
    "atlas",
    "winter",
    "copper",
    "lantern",
    "meadow",
    "cipher",
    "velvet",
    "summit",
    "tide",
    "quartz",
    "echo",
)

SCHEMA = """
DROP TABLE IF EXISTS books;
DROP TABLE IF EXISTS authors;
CREATE TABLE authors (
    id      integer PRIMARY KEY,
    name    text    NOT NULL,
    country text    NOT NULL,
    born    integer NOT NULL
);
CREATE TABLE books (
    id        integer PRIMARY KEY,
    author_id integer NOT NULL REFERENCES authors (id),
    title     text    NOT NULL,
    published integer NOT NULL,
    pages     integer NOT NULL
);
"""
# Built after COPY: loading into an indexed table is several times slower.
INDEXES = """
CREATE INDEX books_author_id_idx ON books (author_id, id);
"""


@dataclass(frozen=True)
class DatasetSize:
    """How much data a profile needs."""

    authors: int
    books_per_author: int  # the mean; each author has 0..2x this many


@dataclass(frozen=True)
class SeedResult:
    """What seeding did, for the run's metadata."""

    skipped: bool
    seconds: float
    rows: dict[str, int]


def _title(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4))).capitalize()


def author_rows(size: DatasetSize, rng: random.Random) -> Iterator[tuple[int, str, str, int]]:
    """Authors 1..size.authors."""
    for author_id in range(1, size.authors + 1):
        name = f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS).capitalize()}"
        yield author_id, name, rng.choice(COUNTRIES), rng.randint(1900, 2000)


def book_rows(size: DatasetSize, rng: random.Random) -> Iterator[tuple[int, int, str, int, int]]:
    """Books with ids in author order, so a page of authors touches a contiguous range."""
    book_id = 0
    for author_id in range(1, size.authors + 1):
        for _ in range(rng.randint(0, 2 * size.books_per_author)):
            book_id += 1
            yield book_id, author_id, _title(rng), rng.randint(1950, 2025), rng.randint(80, 900)


async def current(conn: asyncpg.Connection) -> dict[str, object] | None:
    """The dataset recorded in the database, or None."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", META_TABLE)
    if not exists:
        return None
    row = await conn.fetchrow(f"SELECT version, size, seed FROM {META_TABLE}")
    if row is None:
        return None
    return {"version": row["version"], "size": json.loads(row["size"]), "seed": row["seed"]}


async def seed(dsn: str, size: DatasetSize, seed_value: int = DEFAULT_SEED) -> SeedResult:
    """Create and fill the tables unless the same dataset is already there."""
    t0 = time.perf_counter()
    wanted = {"version": DATASET_VERSION, "size": asdict(size), "seed": seed_value}
    conn = await asyncpg.connect(dsn)
    try:
        if await current(conn) == wanted:
            return SeedResult(True, time.perf_counter() - t0, await _counts(conn))
        rng = random.Random(seed_value)
        async with conn.transaction():
            await conn.execute(f"DROP TABLE IF EXISTS {META_TABLE}")
            await conn.execute(SCHEMA)
            await conn.copy_records_to_table("authors", records=list(author_rows(size, rng)))
            await conn.copy_records_to_table("books", records=list(book_rows(size, rng)))
            await conn.execute(INDEXES)
            await conn.execute(
                f"CREATE TABLE {META_TABLE} (version integer, size jsonb, seed bigint,"
                " seeded_at timestamptz DEFAULT now())"
            )
            await conn.execute(
                f"INSERT INTO {META_TABLE} (version, size, seed) VALUES ($1, $2, $3)",
                DATASET_VERSION,
                json.dumps(asdict(size)),
                seed_value,
            )
        await conn.execute(
            "ANALYZE"
        )  # fresh statistics, so plans do not depend on autovacuum timing
        return SeedResult(False, time.perf_counter() - t0, await _counts(conn))
    finally:
        await conn.close()


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {
        table: int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        for table in ("authors", "books")
    }
