"""The app's own database connection for looking, not for serving: statistics and EXPLAIN.

It is opened apart from the pool, without the query logger and outside the connection counter,
so reading pg_stat_statements at a scrape, or EXPLAINing a request's statements, never shows up
in the counters the harness is measuring.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

APPLICATION_NAME = "pairbench-introspection"  # told apart in pg_stat_activity
CONNECT_TIMEOUT_S = 10.0
EXPLAINABLE = ("SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES", "TABLE")
# Sums over the current database's statements. Our own reading of the view and the EXPLAINs
# are left out: a scrape must not move the counters it reads.
PG_STAT_STATEMENTS_SQL = """
SELECT coalesce(sum(rows), 0)::bigint AS rows,
       coalesce(sum(shared_blks_hit + shared_blks_read), 0)::bigint AS buffers
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%pg_stat_statements%'
  AND query NOT ILIKE 'EXPLAIN%'
"""


class Introspection:
    """One lazily opened connection, used by one coroutine at a time."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._dsn,
                timeout=CONNECT_TIMEOUT_S,
                server_settings={"application_name": APPLICATION_NAME},
            )
        return self._conn

    async def pg_stat_statements(self) -> tuple[int, int] | None:
        """(rows, shared buffers hit + read) summed over the database; None without the view."""
        async with self._lock:
            try:
                row = await (await self._connection()).fetchrow(PG_STAT_STATEMENTS_SQL)
            except (asyncpg.PostgresError, OSError):
                # Not installed, or installed without shared_preload_libraries: no such counters.
                return None
        return None if row is None else (int(row["rows"]), int(row["buffers"]))

    async def value(self, query: str) -> float | None:
        """The one number `query` returns (a pair's counter read at scrape time); None when
        it fails, as a counter that cannot be read is left out."""
        async with self._lock:
            try:
                value = await (await self._connection()).fetchval(query)
            except (asyncpg.PostgresError, OSError):
                return None
        return None if value is None else float(value)

    async def explain(self, statements: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """EXPLAIN (FORMAT JSON) each statement with its arguments; the plans, in order.

        A statement that has no plan (BEGIN, SET, several statements in one string) gets None:
        verification asks about access paths, and such a statement has none.
        """
        plans: list[Any] = []
        async with self._lock:
            conn = await self._connection()
            for query, args in statements:
                if not query.lstrip().upper().startswith(EXPLAINABLE):
                    plans.append(None)
                    continue
                try:
                    raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
                except asyncpg.PostgresError:
                    plans.append(None)
                    continue
                plans.append(json.loads(raw) if isinstance(raw, str) else raw)
        return plans

    async def close(self) -> None:
        """Close the connection, if it was ever opened."""
        if self._conn is not None:
            await self._conn.close()
