"""Create and fill a run's pairs' tables, each pair only when its dataset identity changed.

docs/architecture.md, "Seeding": a pair's identity (its generator version, the fingerprint of
its DDL, its sizes for the profile, the seed) is stored in `pairbench_dataset`, one row per
pair. A pair whose stored identity matches, and whose tables all exist, is skipped; any other is
dropped and rebuilt in one transaction, so a failed seed leaves the previous data intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from .data import DatasetError, Sizes
from .registry import Pair, load_pairs

DEFAULT_SEED = 20261124
META_TABLE = "pairbench_dataset"
# One seeder at a time per database: two runs starting together must not interleave DDL.
SEED_LOCK_KEY = 0x7061697262  # "pairb"
META_DDL = f"""CREATE TABLE IF NOT EXISTS {META_TABLE} (
    pair      text PRIMARY KEY,
    identity  jsonb NOT NULL,
    seeded_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class PairSeed:
    """What seeding did for one pair: one JSON line of `seed`."""

    pair: str
    skipped: bool
    seconds: float
    rows: dict[str, int]
    identity: dict[str, Any]

    def json(self) -> dict[str, Any]:
        """The JSON line: pair, skipped, seconds, rows, identity."""
        return asdict(self)


def identity(pair: Pair, sizes: Sizes, seed: int) -> dict[str, Any]:
    """What makes two datasets of a pair the same: generator version, DDL, sizes, seed."""
    ddl = "\n".join(f"{t.name}\n{t.ddl}\n{t.indexes}" for t in pair.tables)
    return {
        "version": pair.dataset_version,
        "fingerprint": hashlib.sha256(ddl.encode()).hexdigest()[:16],
        "sizes": dict(sorted(sizes.items())),
        "seed": seed,
    }


def select(names: Sequence[str] | None) -> list[Pair]:
    """The named pairs (all registered pairs with tables when None); unknown names are errors."""
    registry = load_pairs()
    if names is None:
        return [p for p in registry.values() if p.tables]
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise DatasetError(f"unknown pair(s) {', '.join(unknown)} (known: {', '.join(registry)})")
    return [registry[n] for n in dict.fromkeys(names)]


def plan(
    profile: str, pairs: Sequence[str] | None = None, seed: int = DEFAULT_SEED
) -> list[dict[str, Any]]:
    """`{"pair", "identity"}` per pair, as `seed` would store it; connects to nothing.

    Two versions of the targets whose identities agree seed the same data: the interleaved gate
    shares one database between them only then (docs/architecture.md, "The gate").
    """
    return [
        {"pair": p.name, "identity": identity(p, p.profile_sizes(profile), seed)}
        for p in select(pairs)
    ]


async def seed(
    dsn: str, profile: str, pairs: Sequence[str] | None = None, seed: int = DEFAULT_SEED
) -> list[PairSeed]:
    """Seed the named pairs' tables (all pairs' when None) for `profile`, skipping unchanged ones.

    Sizes are resolved for every pair before the database is touched: a missing profile or size
    fails the whole call, naming the pair and profile, with nothing dropped.
    """
    chosen = select(pairs)
    wanted = {p.name: identity(p, p.profile_sizes(profile), seed) for p in chosen}
    conn = await asyncpg.connect(dsn)
    try:
        await _enable_pg_stat_statements(conn)
        await conn.execute("SELECT pg_advisory_lock($1)", SEED_LOCK_KEY)
        try:
            await _ensure_meta(conn)
            return [await _seed_pair(conn, p, profile, seed, wanted[p.name]) for p in chosen]
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SEED_LOCK_KEY)
    finally:
        await conn.close()


async def _enable_pg_stat_statements(conn: asyncpg.Connection) -> None:
    # Rows and buffers per request come from it. Creating the extension works without
    # shared_preload_libraries (reading it then fails, and /metrics leaves those counters out);
    # a server without the extension's files, or a user without the right, simply lacks them.
    with contextlib.suppress(asyncpg.PostgresError):
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


async def _ensure_meta(conn: asyncpg.Connection) -> None:
    has_pair_column = await conn.fetchval(
        "SELECT count(*) > 0 FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'pair'",
        META_TABLE,
    )
    if not has_pair_column:  # absent, or one identity for all tables (pairbench before 0.2)
        await conn.execute(f"DROP TABLE IF EXISTS {META_TABLE}")
    await conn.execute(META_DDL)


async def _stored(conn: asyncpg.Connection, pair: Pair) -> dict[str, Any] | None:
    stored = await conn.fetchval(f"SELECT identity FROM {META_TABLE} WHERE pair = $1", pair.name)
    return None if stored is None else dict(json.loads(stored))


async def _tables_exist(conn: asyncpg.Connection, pair: Pair) -> bool:
    names = [t.name for t in pair.tables]
    return bool(
        await conn.fetchval(
            "SELECT bool_and(to_regclass(n) IS NOT NULL) FROM unnest($1::text[]) AS n", names
        )
    )


async def _seed_pair(
    conn: asyncpg.Connection, pair: Pair, profile: str, seed: int, wanted: dict[str, Any]
) -> PairSeed:
    t0 = time.perf_counter()
    if await _stored(conn, pair) == wanted and await _tables_exist(conn, pair):
        return PairSeed(
            pair.name, True, time.perf_counter() - t0, await _counts(conn, pair), wanted
        )
    sizes = pair.profile_sizes(profile)
    async with conn.transaction():
        for table in reversed(pair.tables):
            await conn.execute(f"DROP TABLE IF EXISTS {table.name} CASCADE")
        for table in pair.tables:
            await conn.execute(table.ddl)
            rng = random.Random(f"{seed}:{table.name}")
            await conn.copy_records_to_table(table.name, records=table.rows(sizes, rng))
            if table.indexes:
                await conn.execute(table.indexes)
        await conn.execute(
            f"INSERT INTO {META_TABLE} (pair, identity) VALUES ($1, $2)"
            " ON CONFLICT (pair) DO UPDATE SET identity = excluded.identity, seeded_at = now()",
            pair.name,
            json.dumps(wanted),
        )
    for table in pair.tables:
        # Fresh statistics now: plans must not depend on when autovacuum gets round to it.
        await conn.execute(f"ANALYZE {table.name}")
    return PairSeed(pair.name, False, time.perf_counter() - t0, await _counts(conn, pair), wanted)


async def _counts(conn: asyncpg.Connection, pair: Pair) -> dict[str, int]:
    return {t.name: int(await conn.fetchval(f"SELECT count(*) FROM {t.name}")) for t in pair.tables}
