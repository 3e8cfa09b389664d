"""The tables the pairs read, and their deterministic seed data (loaded with COPY).

Tables are registered: the shared ones here, a pair's own in its module (`register_table`), so
adding a pair never means editing this file. The same (version, tables, size, seed) always
produces byte-identical tables, so two runs, or two machines, measure the same data; each table
draws from its own random stream, so adding a table never changes another. Seeding is skipped
when the database already holds the same dataset.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

DATASET_VERSION = 2  # bump when a generator changes (DDL changes are fingerprinted)
DEFAULT_SEED = 20261124
META_TABLE = "pairbench_dataset"

Size = Mapping[str, int]  # a profile's dataset sizes, e.g. {"authors": 2000, "events": 100000}

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


@dataclass(frozen=True)
class Table:
    """A table: its DDL, the indexes built after COPY, and a generator of its rows."""

    name: str
    ddl: str
    rows: Callable[[Size, random.Random], Iterable[Sequence[Any]]]
    indexes: str = ""  # built after COPY: loading into an indexed table is several times slower


TABLES: dict[str, Table] = {}  # creation order: a table after those it references


def register_table(table: Table) -> Table:
    """Add a table to the dataset (a pair module calls this at import)."""
    if table.name in TABLES and TABLES[table.name] != table:
        raise ValueError(f"table {table.name!r} registered twice")
    TABLES[table.name] = table
    return table


@dataclass(frozen=True)
class SeedResult:
    """What seeding did, for the run's metadata."""

    skipped: bool
    seconds: float
    rows: dict[str, int]


def title(rng: random.Random) -> str:
    """A short deterministic title."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4))).capitalize()


def _authors(size: Size, rng: random.Random) -> Iterator[tuple[int, str, str, int]]:
    for author_id in range(1, size.get("authors", 0) + 1):
        name = f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS).capitalize()}"
        yield author_id, name, rng.choice(COUNTRIES), rng.randint(1900, 2000)


def _books(size: Size, rng: random.Random) -> Iterator[tuple[int, int, str, int, int]]:
    # Ids in author order, so a page of authors touches a contiguous range of books.
    book_id = 0
    mean = size.get("books_per_author", 0)
    for author_id in range(1, size.get("authors", 0) + 1):
        for _ in range(rng.randint(0, 2 * mean)):
            book_id += 1
            yield book_id, author_id, title(rng), rng.randint(1950, 2025), rng.randint(80, 900)


register_table(
    Table(
        "authors",
        """CREATE TABLE authors (
        id      integer PRIMARY KEY,
        name    text    NOT NULL,
        country text    NOT NULL,
        born    integer NOT NULL
    )""",
        _authors,
    )
)
register_table(
    Table(
        "books",
        """CREATE TABLE books (
        id        integer PRIMARY KEY,
        author_id integer NOT NULL REFERENCES authors (id),
        title     text    NOT NULL,
        published integer NOT NULL,
        pages     integer NOT NULL
    )""",
        _books,
        indexes="CREATE INDEX books_author_id_idx ON books (author_id, id)",
    )
)


def _all_tables() -> list[Table]:
    from .registry import load_pairs

    load_pairs()  # pair modules register their own tables at import
    return list(TABLES.values())


def identity(size: Size, seed_value: int, tables: Sequence[Table]) -> dict[str, Any]:
    """What makes two datasets the same: generator version, DDL, sizes, seed."""
    ddl = "\n".join(f"{t.name}\n{t.ddl}\n{t.indexes}" for t in tables)
    return {
        "version": DATASET_VERSION,
        "fingerprint": hashlib.sha256(ddl.encode()).hexdigest()[:16],
        "size": dict(sorted(size.items())),
        "seed": seed_value,
    }


async def current(conn: asyncpg.Connection) -> dict[str, Any] | None:
    """The dataset recorded in the database, or None."""
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", META_TABLE):
        return None
    try:
        stored = await conn.fetchval(f"SELECT identity FROM {META_TABLE}")
    except asyncpg.UndefinedColumnError:  # written by an older pairbench: reseed
        return None
    return json.loads(stored) if stored else None


async def seed(dsn: str, size: Size, seed_value: int = DEFAULT_SEED) -> SeedResult:
    """Create and fill every registered table unless the same dataset is already there."""
    t0 = time.perf_counter()
    tables = _all_tables()
    wanted = identity(size, seed_value, tables)
    conn = await asyncpg.connect(dsn)
    try:
        if await current(conn) == wanted:
            return SeedResult(True, time.perf_counter() - t0, await _counts(conn, tables))
        async with conn.transaction():
            await conn.execute(f"DROP TABLE IF EXISTS {META_TABLE}")
            for table in reversed(tables):
                await conn.execute(f"DROP TABLE IF EXISTS {table.name} CASCADE")
            for table in tables:
                await conn.execute(table.ddl)
                rng = random.Random(f"{seed_value}:{table.name}")
                await conn.copy_records_to_table(table.name, records=table.rows(size, rng))
                if table.indexes:
                    await conn.execute(table.indexes)
            await conn.execute(
                f"CREATE TABLE {META_TABLE} (identity jsonb, seeded_at timestamptz DEFAULT now())"
            )
            await conn.execute(
                f"INSERT INTO {META_TABLE} (identity) VALUES ($1)", json.dumps(wanted)
            )
        await conn.execute(
            "ANALYZE"
        )  # fresh statistics: plans must not depend on autovacuum timing
        return SeedResult(False, time.perf_counter() - t0, await _counts(conn, tables))
    finally:
        await conn.close()


async def _counts(conn: asyncpg.Connection, tables: Sequence[Table]) -> dict[str, int]:
    return {t.name: int(await conn.fetchval(f"SELECT count(*) FROM {t.name}")) for t in tables}
