"""One request with the app's counters read around it, for the pair tests' mechanism checks."""

from __future__ import annotations

import httpx

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
