"""Server-side counters that show the mechanism behind the latency, on /metrics.

The harness reads them before and after a trial (one variant at a time), so plain process-wide
counters are enough: their deltas belong to the variant that ran in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
from asyncpg import introspection
from prometheus_client import CollectorRegistry, Counter, Histogram

LOOP_LAG_INTERVAL_S = 0.01
_INTROSPECTION = frozenset(
    getattr(introspection, name)
    for name in ("INTRO_LOOKUP_TYPES", "INTRO_LOOKUP_TYPES_13", "TYPE_BY_NAME")
    if hasattr(introspection, name)
)
LOOP_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """One registry per app instance, so two apps in one process (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.queries = Counter(
            "pairbench_db_queries",
            "SQL statements executed: kind=app (written by a handler) or driver (pool reset,"
            " type introspection)",
            ["kind"],
            registry=self.registry,
        )
        self.query_seconds = Counter(
            "pairbench_db_query_seconds", "Time spent in SQL statements", registry=self.registry
        )
        self.connections_opened = Counter(
            "pairbench_db_connections_opened", "Database connections opened", registry=self.registry
        )
        self.cache_hits = Counter("pairbench_cache_hits", "Cache hits", registry=self.registry)
        self.cache_misses = Counter(
            "pairbench_cache_misses", "Cache misses", registry=self.registry
        )
        self.loop_lag = Histogram(
            "pairbench_event_loop_lag_seconds",
            "How late the event loop woke a timer: time the loop was blocked",
            buckets=LOOP_LAG_BUCKETS,
            registry=self.registry,
        )

    def query_logger(self, conn: asyncpg.Connection) -> Callable[[Any], None]:
        """An asyncpg query logger for `conn` (Connection.add_query_logger): one call a statement.

        asyncpg sends statements of its own: a reset on every release to the pool and, once
        per connection and type, a catalogue lookup. They are real round trips, but not the
        handler's, so they are counted apart: the mechanism checks read kind="app".
        """
        driver_statements = {conn.get_reset_query(), *_INTROSPECTION}
        app_queries = self.queries.labels(kind="app")
        driver_queries = self.queries.labels(kind="driver")

        def log(record: Any) -> None:
            query = record.query
            if query in driver_statements or "set_config('jit'" in query:
                driver_queries.inc()
            else:
                app_queries.inc()
            self.query_seconds.inc(record.elapsed)

        return log

    @contextlib.asynccontextmanager
    async def watch_event_loop(self) -> AsyncIterator[None]:
        """Sample event-loop lag for the app's lifetime: a blocked loop wakes the timer late."""

        async def sample() -> None:
            while True:
                start = time.perf_counter()
                await asyncio.sleep(LOOP_LAG_INTERVAL_S)
                self.loop_lag.observe(max(0.0, time.perf_counter() - start - LOOP_LAG_INTERVAL_S))

        task = asyncio.create_task(sample())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
