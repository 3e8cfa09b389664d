"""Seeding is deterministic, complete, and skipped when the same dataset is already there."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from pairbench.harness import services
from pairbench.targets import data

SIZE = {"authors": 150, "books_per_author": 3}
CHECKSUM = "SELECT md5(string_agg(t::text, ',' ORDER BY t.id)) FROM {table} AS t"


def _database(servers: services.Endpoints, name: str) -> str:
    admin = servers.pg_dsn.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return servers.pg_dsn.rsplit("/", 1)[0] + "/" + name


def _checksums(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return {
            t: conn.execute(CHECKSUM.format(table=t)).fetchone()[0] for t in ("authors", "books")
        }


@pytest.fixture(scope="module")
def two_databases(servers: services.Endpoints) -> tuple[str, str]:
    return _database(servers, "seed_a"), _database(servers, "seed_b")


def test_same_seed_same_bytes(two_databases: tuple[str, str]) -> None:
    a, b = two_databases
    first = asyncio.run(data.seed(a, SIZE))
    second = asyncio.run(data.seed(b, SIZE))
    assert not first.skipped and not second.skipped
    assert first.rows == second.rows and first.rows["authors"] == SIZE["authors"]
    assert _checksums(a) == _checksums(b)


def test_reseeding_the_same_dataset_is_skipped(two_databases: tuple[str, str]) -> None:
    a, _ = two_databases
    asyncio.run(data.seed(a, SIZE))
    again = asyncio.run(data.seed(a, SIZE))
    assert again.skipped and again.rows["authors"] == SIZE["authors"]


def test_other_seed_or_size_reseeds(two_databases: tuple[str, str]) -> None:
    a, b = two_databases
    asyncio.run(data.seed(a, SIZE))
    before = _checksums(a)
    other = asyncio.run(data.seed(b, SIZE, seed_value=data.DEFAULT_SEED + 1))
    assert not other.skipped and _checksums(b) != before
    bigger = asyncio.run(data.seed(b, {**SIZE, "authors": SIZE["authors"] + 10}))
    assert not bigger.skipped and bigger.rows["authors"] == SIZE["authors"] + 10


def test_books_reference_their_authors_and_are_indexed(two_databases: tuple[str, str]) -> None:
    a, _ = two_databases
    asyncio.run(data.seed(a, SIZE))
    with psycopg.connect(a) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM books b LEFT JOIN authors a ON a.id = b.author_id WHERE a.id IS NULL"
        ).fetchone()[0]
        indexes = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'books'")
        }
    assert orphans == 0
    assert "books_author_id_idx" in indexes
