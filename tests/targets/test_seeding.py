"""Seeding per pair: only the named pairs, reseeded only when their identity changes, each
pair's identity in its own row of pairbench_dataset, statistics fresh."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import psycopg
import pytest

from pairbench.targets.data import DatasetError
from pairbench.targets.seeding import DEFAULT_SEED, META_TABLE, seed

CHECKSUM = "SELECT md5(string_agg(t::text, ',' ORDER BY t.id)) FROM {table} AS t"


def _one(dsn: str, sql: str, *args: object) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row[0]


def test_another_seed_or_profile_reseeds(fresh_database: Callable[[str], str]) -> None:
    dsn = fresh_database("seeding_reseed")
    (first,) = asyncio.run(seed(dsn, "test", ["pool"]))
    before = _one(dsn, CHECKSUM.format(table="pool_authors"))
    (other,) = asyncio.run(seed(dsn, "test", ["pool"], seed=DEFAULT_SEED + 1))
    assert not other.skipped and other.identity["seed"] == DEFAULT_SEED + 1
    assert _one(dsn, CHECKSUM.format(table="pool_authors")) != before
    (bigger,) = asyncio.run(seed(dsn, "quick", ["pool"]))
    assert not bigger.skipped and bigger.rows["pool_authors"] == 2000
    assert first.rows["pool_authors"] == 300


def test_each_pair_has_its_own_identity_row(fresh_database: Callable[[str], str]) -> None:
    dsn = fresh_database("seeding_rows")
    asyncio.run(seed(dsn, "test", ["pool", "n_plus_one"]))
    seeded_at = _one(dsn, f"SELECT seeded_at FROM {META_TABLE} WHERE pair = 'pool'")
    (reseeded,) = asyncio.run(seed(dsn, "quick", ["n_plus_one"]))
    assert not reseeded.skipped
    # The other pair was neither touched nor forgotten: its row, and its skip, still hold.
    assert _one(dsn, f"SELECT seeded_at FROM {META_TABLE} WHERE pair = 'pool'") == seeded_at
    (pool,) = asyncio.run(seed(dsn, "test", ["pool"]))
    assert pool.skipped
    assert _one(dsn, f"SELECT count(*) FROM {META_TABLE}") == 2


def test_all_pairs_with_tables_by_default_and_analyzed(
    fresh_database: Callable[[str], str],
) -> None:
    dsn = fresh_database("seeding_all")
    results = asyncio.run(seed(dsn, "test"))
    assert [r.pair for r in results] == ["cache", "n_plus_one", "pagination", "pool"]
    tables = [t for r in results for t in r.rows]
    never_analyzed = _one(
        dsn,
        "SELECT count(*) FROM pg_stat_user_tables WHERE relname = ANY(%s) AND last_analyze IS NULL",
        tables,
    )
    assert never_analyzed == 0


def test_a_dropped_table_is_reseeded(fresh_database: Callable[[str], str]) -> None:
    dsn = fresh_database("seeding_dropped")
    asyncio.run(seed(dsn, "test", ["pagination"]))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE feed_items")
    (again,) = asyncio.run(seed(dsn, "test", ["pagination"]))
    assert not again.skipped and again.rows == {"feed_items": 20_000}


def test_a_dataset_table_of_an_older_pairbench_is_replaced(
    fresh_database: Callable[[str], str],
) -> None:
    dsn = fresh_database("seeding_old_meta")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {META_TABLE} (identity jsonb)")
        conn.execute(f"""INSERT INTO {META_TABLE} VALUES ('{{"version": 2}}')""")
    (result,) = asyncio.run(seed(dsn, "test", ["pagination"]))
    assert not result.skipped
    assert _one(dsn, f"SELECT pair FROM {META_TABLE}") == "pagination"


@pytest.mark.parametrize(
    ("profile", "pairs", "message"),
    [
        ("huge", ["pool"], "unknown profile 'huge'"),
        ("test", ["pool", "nope"], "unknown pair(s) nope"),
    ],
)
def test_bad_inputs_fail_before_touching_the_database(
    fresh_database: Callable[[str], str], profile: str, pairs: list[str], message: str
) -> None:
    dsn = fresh_database("seeding_bad")
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        asyncio.run(seed(dsn, profile, pairs))
    assert _one(dsn, "SELECT to_regclass(%s) IS NULL", META_TABLE) is True
