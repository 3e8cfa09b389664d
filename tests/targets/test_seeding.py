"""Seeding per pair, through the entry point the harness uses: only the named pairs, reseeded
only when their identity changes, each pair's identity in its own row of pairbench_dataset,
statistics fresh. The pair seeded here is a fixture (tests/fixtures/pairs/fixture_writes.py),
so no test outside a pair's own file depends on a built-in pair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from pairbench.targets.seeding import DEFAULT_SEED, META_TABLE

FIXTURE_PAIRS = Path(__file__).resolve().parent.parent / "fixtures" / "pairs"
PAIR = "fixture_writes"
TABLE = "fixture_notes"
CHECKSUM = f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {TABLE} AS t"
COMMAND_TIMEOUT_S = 120


def _seed(dsn: str, *args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "pairbench.targets", "seed", *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env={**os.environ, "PAIRBENCH_PG_DSN": dsn, "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS)},
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _one(dsn: str, sql: str, *args: object) -> object:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row[0]


def test_the_same_identity_is_skipped_another_seed_or_profile_reseeds(
    fresh_database: Callable[[str], str],
) -> None:
    dsn = fresh_database("seeding_reseed")
    (first,) = _seed(dsn, "--profile", "test", "--pair", PAIR)
    assert not first["skipped"] and first["rows"] == {TABLE: 10}
    assert first["identity"]["seed"] == DEFAULT_SEED
    before = _one(dsn, CHECKSUM)
    (same,) = _seed(dsn, "--profile", "test", "--pair", PAIR)
    assert same["skipped"] and same["identity"] == first["identity"]
    (other,) = _seed(dsn, "--profile", "test", "--pair", PAIR, "--seed", str(DEFAULT_SEED + 1))
    assert not other["skipped"] and other["identity"]["seed"] == DEFAULT_SEED + 1
    assert _one(dsn, CHECKSUM) != before
    (bigger,) = _seed(dsn, "--profile", "quick", "--pair", PAIR)
    assert not bigger["skipped"] and bigger["rows"] == {TABLE: 20}


def test_every_pair_by_default_each_with_its_own_row_and_fresh_statistics(
    fresh_database: Callable[[str], str],
) -> None:
    dsn = fresh_database("seeding_all")
    lines = _seed(dsn, "--profile", "test")
    assert PAIR in [line["pair"] for line in lines]
    assert all(all(line["rows"].values()) for line in lines)
    tables = [t for line in lines for t in line["rows"]]
    never_analyzed = _one(
        dsn,
        "SELECT count(*) FROM pg_stat_user_tables WHERE relname = ANY(%s) AND last_analyze IS NULL",
        tables,
    )
    assert never_analyzed == 0
    assert _one(dsn, f"SELECT count(*) FROM {META_TABLE}") == len(lines)
    seeded_at = _one(dsn, f"SELECT max(seeded_at) FROM {META_TABLE} WHERE pair <> %s", PAIR)
    (reseeded,) = _seed(dsn, "--profile", "quick", "--pair", PAIR)
    assert not reseeded["skipped"]
    # The other pairs were neither touched nor forgotten: their rows, and their skips, hold.
    assert _one(dsn, f"SELECT max(seeded_at) FROM {META_TABLE} WHERE pair <> %s", PAIR) == seeded_at
    again = _seed(dsn, "--profile", "test")
    assert [line["pair"] for line in again if not line["skipped"]] == [PAIR]


def test_a_dropped_table_is_reseeded(fresh_database: Callable[[str], str]) -> None:
    dsn = fresh_database("seeding_dropped")
    _seed(dsn, "--profile", "test", "--pair", PAIR)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {TABLE}")
    (again,) = _seed(dsn, "--profile", "test", "--pair", PAIR)
    assert not again["skipped"] and again["rows"] == {TABLE: 10}


def test_a_dataset_table_of_an_older_pairbench_is_replaced(
    fresh_database: Callable[[str], str],
) -> None:
    dsn = fresh_database("seeding_old_meta")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {META_TABLE} (identity jsonb)")
        conn.execute(f"""INSERT INTO {META_TABLE} VALUES ('{{"version": 2}}')""")
    (result,) = _seed(dsn, "--profile", "test", "--pair", PAIR)
    assert not result["skipped"]
    assert _one(dsn, f"SELECT pair FROM {META_TABLE}") == PAIR
