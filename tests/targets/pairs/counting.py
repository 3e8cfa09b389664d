"""The app's counters read around a request, and its loop-lag histogram, for the pair tests'
mechanism checks."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pairbench.harness import metricsclient
from pairbench.targets.registry import document

COUNTERS = document()["counters"]


def get_counting(
    client: httpx.Client, path: str, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, dict[str, float]]:
    """GET `path` (with `headers`); its response and how much each counter of /metrics grew."""
    before = client.get("/metrics").text
    response = client.get(path, headers=headers or {})
    return response, metricsclient.delta(before, client.get("/metrics").text, COUNTERS)


def lag_samples_above(metrics_text: str, bound: str) -> float:
    """Event-loop lag observations above `bound` seconds (a bucket bound), from a /metrics scrape."""
    values = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "pairbench_event_loop_lag_seconds_count":
                values["count"] = sample.value
            elif sample.name == "pairbench_event_loop_lag_seconds_bucket" and (
                sample.labels.get("le") == bound
            ):
                values["below"] = sample.value
    return values["count"] - values["below"]  # a KeyError: the histogram or bucket is gone
