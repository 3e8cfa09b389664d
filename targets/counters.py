"""The counter catalogue: what each /metrics counter means and how results read it.

docs/architecture.md, "What the targets describe": the harness and results hold no table of
counters, they read this one from `describe` (or `/pairs`). A counter is a Prometheus sample
(`metric`, `labels`), how people read it (`label`, `unit`), how it accumulates over a trial
(`kind`) and what it is divided by (`per`), times `scale` for display. The generic counters are
here; a pair declares its own with `pair.counter(...)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["delta", "peak"]
Per = Literal["request", "trial"] | tuple[str, ...]

PER_REQUEST: Per = "request"
PER_TRIAL: Per = "trial"
MS_PER_S = 1000  # seconds shown as milliseconds
PERCENT = 100  # a ratio shown as a percentage
MIB_PER_BYTE = 2.0**-20  # bytes shown as MiB (exact in binary floating point)


@dataclass(frozen=True)
class CounterSpec:
    """One counter: where to read it and how to read it."""

    name: str
    metric: str
    label: str
    unit: str
    kind: Kind = "delta"
    per: Per = PER_REQUEST
    scale: float = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    help: str = ""  # the Prometheus HELP text (for counters a pair declares)
    # A pair's counter read from PostgreSQL at every scrape rather than counted by handlers: a
    # statement returning one number (a sum over pg_stat_statements), run on the app's
    # introspection connection (targets/introspect.py); None: handlers count it.
    read: str | None = None

    def describe(self) -> dict[str, Any]:
        """The catalogue entry, exactly the documented keys."""
        return {
            "metric": self.metric,
            "labels": dict(self.labels),
            "label": self.label,
            "unit": self.unit,
            "kind": self.kind,
            "per": self.per if isinstance(self.per, str) else list(self.per),
            "scale": self.scale,
        }


def per_sum_of(names: Sequence[str]) -> Per:
    """A `per` that divides by the sum of other counters (e.g. hits / (hits + misses))."""
    return tuple(names)


# Metric names, defined once: targets/metrics.py creates them, the catalogue points at them.
QUERIES_METRIC = "pairbench_db_queries"
QUERY_SECONDS_METRIC = "pairbench_db_query_seconds"
CONNECTIONS_METRIC = "pairbench_db_connections_opened"
LOOP_LAG_METRIC = "pairbench_event_loop_lag_seconds"
RESPONSE_BYTES_METRIC = "pairbench_response_bytes"
REDIS_COMMANDS_METRIC = "pairbench_redis_commands"
REDIS_SECONDS_METRIC = "pairbench_redis_command_seconds"
DB_ROWS_METRIC = "pairbench_db_rows"
DB_BUFFERS_METRIC = "pairbench_db_buffers"
PEAK_RSS_METRIC = "pairbench_peak_rss_bytes"
CPU_SECONDS_METRIC = "pairbench_process_cpu_seconds"
# The system's monotonic clock in the server process: the same in every process, so a trial's
# delta is its wall time, and the process group takes the largest (targets/groupmetrics.py).
WALL_SECONDS_METRIC = "pairbench_wall_seconds"
SLOWDOWN_METRIC = "pairbench_slowdown_seconds"  # only with PAIRBENCH_SLOWDOWN (targets/slowdown.py)
# Read from the downstream service's /stats at scrape time (targets/downstream.py).
DOWNSTREAM_CONNECTIONS_METRIC = "pairbench_downstream_connections"
DOWNSTREAM_CALLS_METRIC = "pairbench_downstream_calls"
DOWNSTREAM_PEAK_METRIC = "pairbench_downstream_peak_open_calls"
DOWNSTREAM_REJECTED_METRIC = "pairbench_downstream_rejected"

GENERIC: dict[str, CounterSpec] = {
    spec.name: spec
    for spec in (
        CounterSpec(
            "queries",
            f"{QUERIES_METRIC}_total",
            "SQL statements",
            "statements",
            labels={"kind": "app"},
        ),
        CounterSpec(
            "driver_queries",
            f"{QUERIES_METRIC}_total",
            "driver statements (pool reset, type lookups)",
            "statements",
            labels={"kind": "driver"},
        ),
        CounterSpec(
            "query_seconds",
            f"{QUERY_SECONDS_METRIC}_total",
            "time in SQL statements",
            "ms",
            scale=MS_PER_S,
        ),
        CounterSpec(
            "db_connections_opened",
            f"{CONNECTIONS_METRIC}_total",
            "database connections opened",
            "connections",
        ),
        CounterSpec(
            "loop_lag_seconds_sum",
            f"{LOOP_LAG_METRIC}_sum",
            "mean event-loop lag",
            "ms",
            per=per_sum_of(["loop_lag_samples"]),
            scale=MS_PER_S,
        ),
        CounterSpec(
            "loop_lag_samples",
            f"{LOOP_LAG_METRIC}_count",
            "event-loop lag samples",
            "samples",
            per=PER_TRIAL,
        ),
        CounterSpec(
            "response_bytes",
            f"{RESPONSE_BYTES_METRIC}_total",
            "response body bytes sent",
            "bytes",
        ),
        CounterSpec(
            "cpu_seconds",
            f"{CPU_SECONDS_METRIC}_total",
            "server CPU time",
            "ms",
            scale=MS_PER_S,
        ),
        CounterSpec(
            "wall_seconds",
            f"{WALL_SECONDS_METRIC}_total",
            "server wall time",
            "ms",
            per=PER_TRIAL,
            scale=MS_PER_S,
        ),
        # CPU seconds per wall second: how many cores the server kept busy over a trial (at
        # most 1 for one process, up to its count for the process group).
        CounterSpec(
            "cores_busy",
            f"{CPU_SECONDS_METRIC}_total",
            "server cores busy (CPU time / wall time)",
            "cores",
            per=per_sum_of(["wall_seconds"]),
        ),
        CounterSpec(
            "redis_commands",
            f"{REDIS_COMMANDS_METRIC}_total",
            "Redis commands",
            "commands",
        ),
        CounterSpec(
            "redis_seconds",
            f"{REDIS_SECONDS_METRIC}_total",
            "time Redis spent executing commands (every client waits meanwhile)",
            "ms",
            scale=MS_PER_S,
        ),
        CounterSpec(
            "db_rows",
            f"{DB_ROWS_METRIC}_total",
            "rows returned or written (pg_stat_statements)",
            "rows",
        ),
        CounterSpec(
            "db_buffers",
            f"{DB_BUFFERS_METRIC}_total",
            "shared buffers hit or read (pg_stat_statements)",
            "buffers",
        ),
        CounterSpec(
            "peak_rss",
            PEAK_RSS_METRIC,
            "peak resident memory of the server",
            "MiB",
            kind="peak",
            per=PER_TRIAL,
            scale=MIB_PER_BYTE,
        ),
        CounterSpec(
            "slowdown_seconds",
            f"{SLOWDOWN_METRIC}_total",
            "injected slowdown (PAIRBENCH_SLOWDOWN)",
            "ms",
            scale=MS_PER_S,
        ),
        CounterSpec(
            "downstream_connections",
            f"{DOWNSTREAM_CONNECTIONS_METRIC}_total",
            "connections the downstream service accepted (TCP and TLS handshakes)",
            "connections",
        ),
        CounterSpec(
            "downstream_calls",
            f"{DOWNSTREAM_CALLS_METRIC}_total",
            "calls the downstream service answered",
            "calls",
        ),
        # The most calls open at the service at once, served or queued (its peak window
        # restarts at every /metrics?reset_peak=1): a fan-out's width reaching the service.
        CounterSpec(
            "downstream_peak_calls",
            DOWNSTREAM_PEAK_METRIC,
            "most calls open at the downstream at once (served or queued)",
            "calls",
            kind="peak",
            per=PER_TRIAL,
        ),
        CounterSpec(
            "downstream_rejected",
            f"{DOWNSTREAM_REJECTED_METRIC}_total",
            "calls the downstream refused (503: over its concurrency limit)",
            "calls",
        ),
    )
}
