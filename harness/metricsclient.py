"""Read the target's Prometheus counters and take deltas between two scrapes."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

# run.json counter name -> (Prometheus sample name, required labels)
COUNTERS: dict[str, tuple[str, dict[str, str]]] = {
    "queries": ("pairbench_db_queries_total", {"kind": "app"}),
    "driver_queries": ("pairbench_db_queries_total", {"kind": "driver"}),
    "db_connections_opened": ("pairbench_db_connections_opened_total", {}),
    "cache_hits": ("pairbench_cache_hits_total", {}),
    "cache_misses": ("pairbench_cache_misses_total", {}),
    "loop_lag_seconds_sum": ("pairbench_event_loop_lag_seconds_sum", {}),
    "loop_lag_samples": ("pairbench_event_loop_lag_seconds_count", {}),
}


def parse(text: str) -> dict[str, float]:
    """The known counters found in one exposition text."""
    values: dict[str, float] = {}
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    for key, (sample_name, labels) in COUNTERS.items():
        for sample in samples:
            if sample.name == sample_name and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                values[key] = values.get(key, 0.0) + float(sample.value)
    return values


def delta(before: str | None, after: str | None) -> dict[str, float]:
    """Counter increases between two scrapes (empty when either scrape failed)."""
    if not before or not after:
        return {}
    b, a = parse(before), parse(after)
    return {k: a[k] - b.get(k, 0.0) for k in a}
