"""Table maintenance the database pairs share (a helper module, not a pair)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg


async def vacuum(pool: asyncpg.Pool, tables: Sequence[str]) -> None:
    """VACUUM each of `tables` that exists, so its visibility map is set before any request.

    Seeding only ANALYZEs (VACUUM cannot run in its transaction); until autovacuum gets round to
    a freshly loaded table, an index-only scan still visits the heap for every row, and the
    plan's cost changes the moment it does. A pair whose lesson is the index-only scan, or whose
    plan must not change mid-run, vacuums at the app's start (and in its micro setup). A table
    absent because the run did not seed its pair is skipped; one already vacuumed costs
    milliseconds (all-visible pages are skipped).
    """
    async with pool.acquire() as conn:
        for table in tables:
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                # An identifier cannot be a parameter; `tables` are the pairs' own constants.
                await conn.execute(f'VACUUM "{table}"')
