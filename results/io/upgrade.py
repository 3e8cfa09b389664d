"""Lift a run written before pairs described their counters (schema 1, or a harness that does
not yet store them) to the current shape, once, on reading: the rest of results then reads
counter metadata only and holds no table of counters (docs/architecture.md, What the targets
describe).

The table below is the single place that knows the names version 1 wrote.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

PERCENT = 100.0
MS_PER_SECOND = 1000.0

# Counter name -> its metadata, as a version 2 pair would declare it.
V1_COUNTERS: dict[str, dict[str, Any]] = {
    "queries": {
        "metric": "pairbench_db_queries_total",
        "labels": {"kind": "app"},
        "label": "SQL statements",
        "unit": "statements",
        "kind": "delta",
        "per": "request",
        "scale": 1.0,
    },
    "driver_queries": {
        "metric": "pairbench_db_queries_total",
        "labels": {"kind": "driver"},
        "label": "driver statements",
        "unit": "statements",
        "kind": "delta",
        "per": "request",
        "scale": 1.0,
    },
    "db_connections_opened": {
        "metric": "pairbench_db_connections_opened_total",
        "labels": {},
        "label": "connections opened",
        "unit": "connections",
        "kind": "delta",
        "per": "request",
        "scale": 1.0,
    },
    "cache_hits": {
        "metric": "pairbench_cache_hits_total",
        "labels": {},
        "label": "cache hit ratio",
        "unit": "%",
        "kind": "delta",
        "per": ["cache_hits", "cache_misses"],
        "scale": PERCENT,
    },
    "cache_misses": {
        "metric": "pairbench_cache_misses_total",
        "labels": {},
        "label": "cache misses",
        "unit": "misses",
        "kind": "delta",
        "per": "request",
        "scale": 1.0,
    },
    "loop_lag_seconds_sum": {
        "metric": "pairbench_loop_lag_seconds_sum",
        "labels": {},
        "label": "event-loop lag, mean",
        "unit": "ms",
        "kind": "delta",
        "per": ["loop_lag_samples"],
        "scale": MS_PER_SECOND,
    },
    "loop_lag_samples": {
        "metric": "pairbench_loop_lag_seconds_count",
        "labels": {},
        "label": "event-loop lag samples",
        "unit": "samples",
        "kind": "delta",
        "per": "trial",
        "scale": 1.0,
    },
}
# What version 1's mechanism figure showed, in its order: the lesson of a pair that declared
# none. The other counters stay described but get no panel.
V1_LESSON: tuple[str, ...] = (
    "queries",
    "db_connections_opened",
    "cache_hits",
    "loop_lag_seconds_sum",
)


def upgrade(run: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the run in which every pair has `counters` metadata and a `lesson`."""
    upgraded = copy.copy(dict(run))
    upgraded["pairs"] = {name: upgrade_pair(pair) for name, pair in run["pairs"].items()}
    return upgraded


def upgrade_pair(pair: Mapping[str, Any]) -> dict[str, Any]:
    """The pair with counter metadata for the version 1 counters its trials report, when it
    declares none; a pair that declares its counters is returned as is (a shallow copy)."""
    out = dict(pair)
    if out.get("counters") is not None:
        out.setdefault("lesson", list(out["counters"]))
        return out
    reported = {name for t in pair.get("trials", []) for name in (t.get("counters") or {})}
    out["counters"] = {n: copy.deepcopy(spec) for n, spec in V1_COUNTERS.items() if n in reported}
    out["lesson"] = [n for n in V1_LESSON if n in out["counters"]]
    return out
