"""Server-side counters that show the mechanism behind the latency, on /metrics.

The harness reads them before and after a trial (one variant at a time), so plain process-wide
counters are enough: their deltas belong to the variant that ran in between. What each counter
means is in targets/counters.py; this module only keeps the values. Some are counted as they
happen (statements, connections, loop lag, response bytes, a pair's own counters), others are
read at scrape time (Redis commands, pg_stat_statements, peak memory, the process's CPU time).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import resource
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import asyncpg
from asyncpg import introspection
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import counters as names
from . import explain
from .counters import CounterSpec

LOOP_LAG_INTERVAL_S = 0.01
_INTROSPECTION = frozenset(
    getattr(introspection, name)
    for name in ("INTRO_LOOKUP_TYPES", "INTRO_LOOKUP_TYPES_13", "TYPE_BY_NAME")
    if hasattr(introspection, name)
)
LOOP_LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PROC_STATUS = Path("/proc/self/status")
PROC_CLEAR_REFS = Path("/proc/self/clear_refs")
CLEAR_PEAK_RSS = "5"  # proc(5): writing 5 to clear_refs resets VmHWM to the current RSS
KIB = 1024
# Scraped values that are gauges, not ever-growing counters (targets/counters.py).
SCRAPED_GAUGES = frozenset({names.DOWNSTREAM_PEAK_METRIC})


class ScrapedCounters(Collector):
    """Counters whose values are read from another server at scrape time.

    prometheus_client collects synchronously, but Redis and PostgreSQL are read with async
    clients: the async /metrics handler reads them first and stores the values here, and
    `collect` reports whatever was read (a counter that could not be read is left out).
    """

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, float]] = {}  # metric -> (help, value)

    def collect(self) -> Iterable[Metric]:
        """The values the last scrape read."""
        for metric, (help_text, value) in self.values.items():
            if metric in SCRAPED_GAUGES:  # a peak goes down when its window restarts
                yield GaugeMetricFamily(metric, help_text, value=value)
            else:
                yield CounterMetricFamily(metric, help_text, value=value)


class ProcessCpu(Collector):
    """The target process's CPU seconds (user + system, every thread) and the wall clock, read
    at scrape time.

    `time.process_time()` is cumulative, so the harness's delta over a trial is the CPU the
    variant cost the server: what compressing a body or encoding JSON spends, which latency on
    an idle core hides. Child processes (a process pool's workers) are not in it.
    """

    def collect(self) -> Iterable[CounterMetricFamily]:
        """The CPU seconds so far."""
        yield CounterMetricFamily(
            names.CPU_SECONDS_METRIC,
            "CPU seconds of the target process (user + system, all threads)",
            value=time.process_time(),
        )
        yield CounterMetricFamily(
            names.WALL_SECONDS_METRIC,
            "The system's monotonic clock in seconds: a trial's delta is its wall time",
            value=time.monotonic(),
        )


class Metrics:
    """One registry per app instance, so two apps in one process (tests) never collide."""

    def __init__(self, declared: Iterable[CounterSpec] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.queries = Counter(
            names.QUERIES_METRIC,
            "SQL statements executed: kind=app (written by a handler) or driver (pool reset,"
            " type introspection)",
            ["kind"],
            registry=self.registry,
        )
        self.query_seconds = Counter(
            names.QUERY_SECONDS_METRIC, "Time spent in SQL statements", registry=self.registry
        )
        self.connections_opened = Counter(
            names.CONNECTIONS_METRIC, "Database connections opened", registry=self.registry
        )
        self.loop_lag = Histogram(
            names.LOOP_LAG_METRIC,
            "How late the event loop woke a timer: time the loop was blocked",
            buckets=LOOP_LAG_BUCKETS,
            registry=self.registry,
        )
        self.response_bytes = Counter(
            names.RESPONSE_BYTES_METRIC,
            "Response body bytes sent (not /metrics or /_pairbench)",
            registry=self.registry,
        )
        self.peak_rss = Gauge(
            names.PEAK_RSS_METRIC,
            "Peak resident memory since the last /metrics?reset_peak=1",
            registry=self.registry,
        )
        self.slowdown_seconds = Counter(
            names.SLOWDOWN_METRIC,
            "Time injected into slowed variants' responses (PAIRBENCH_SLOWDOWN)",
            ["pair", "variant"],
            registry=self.registry,
        )
        self.scraped = ScrapedCounters()
        self.registry.register(self.scraped)
        self.registry.register(ProcessCpu())
        self._declared: dict[str, Counter] = {}
        # Read at scrape time (`pair.counter(read=...)`): reported by `scraped`, never counted.
        self.read: list[CounterSpec] = [spec for spec in declared if spec.read is not None]
        for spec in declared:
            if spec.read is not None:
                continue
            self._declared[spec.name] = Counter(
                spec.metric.removesuffix("_total"), spec.help or spec.label, registry=self.registry
            )
        self._sampled_peak = 0  # where /proc has no VmHWM: the loop watcher's samples

    def inc(self, spec: CounterSpec, amount: float = 1) -> None:
        """Increment a counter a pair declared."""
        self._declared[spec.name].inc(amount)

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
                # asyncpg calls loggers with call_soon, which runs them in the context of the
                # request that sent the statement: only that request's statements are recorded.
                recording = explain.RECORDING.get()
                if recording is not None and len(recording) < explain.MAX_STATEMENTS:
                    recording.append((query, tuple(record.args or ())))
            self.query_seconds.inc(record.elapsed)

        return log

    def set_scraped(self, values: Mapping[str, tuple[str, float]]) -> None:
        """Store the values read from the servers for this scrape."""
        self.scraped.values = dict(values)

    def peak_rss_bytes(self, reset: bool, release: bool = False) -> int:
        """The server's peak resident memory since the last reset (resetting first if asked;
        `release`: after returning freed memory to the system, `_release_freed_memory`)."""
        if reset:
            if release:
                _release_freed_memory()
            with contextlib.suppress(OSError):
                PROC_CLEAR_REFS.write_text(CLEAR_PEAK_RSS)
            self._sampled_peak = _current_rss()
        hwm = _proc_status_kib("VmHWM")
        peak = hwm * KIB if hwm is not None else self._sampled_peak
        self.peak_rss.set(peak)
        return peak

    @contextlib.asynccontextmanager
    async def watch_event_loop(self) -> AsyncIterator[None]:
        """Sample event-loop lag for the app's lifetime: a blocked loop wakes the timer late."""

        async def sample() -> None:
            while True:
                start = time.perf_counter()
                await asyncio.sleep(LOOP_LAG_INTERVAL_S)
                self.loop_lag.observe(max(0.0, time.perf_counter() - start - LOOP_LAG_INTERVAL_S))
                if not HAS_VMHWM:  # without /proc's VmHWM, the peak is what samples saw
                    self._sampled_peak = max(self._sampled_peak, _current_rss())

        task = asyncio.create_task(sample())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _release_freed_memory() -> None:
    """Give memory the last variant freed back to the system before a new peak window opens.

    The window starts at the current resident size; without this it would include what the
    previous variant allocated and freed but the allocators kept (glibc's heap, pymalloc's
    partly used arenas), and a variant would be charged for the one before it. gc.collect
    frees what only cycles held; glibc's malloc_trim returns free heap pages (elsewhere it is
    absent and the window starts where the allocator left it).
    """
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _load_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)  # glibc only: musl has none
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return cast(Callable[[int], int], trim)


_MALLOC_TRIM = _load_malloc_trim()


def _proc_status_kib(field: str) -> int | None:
    try:
        for line in PROC_STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _current_rss() -> int:
    rss = _proc_status_kib("VmRSS")
    if rss is not None:
        return rss * KIB
    # No /proc (macOS): ru_maxrss is the lifetime peak, in bytes there (KiB on Linux).
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * KIB


HAS_VMHWM = _proc_status_kib("VmHWM") is not None
