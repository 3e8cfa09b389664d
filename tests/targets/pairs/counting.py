"""One request with the app's counters read around it, for the pair tests' mechanism checks."""

from __future__ import annotations

import httpx

from pairbench.harness import metricsclient
from pairbench.targets.registry import document

COUNTERS = document()["counters"]


def get_counting(client: httpx.Client, path: str) -> tuple[httpx.Response, dict[str, float]]:
    """GET `path`; its response and how much each counter of /metrics grew meanwhile."""
    before = client.get("/metrics").text
    response = client.get(path)
    return response, metricsclient.delta(before, client.get("/metrics").text, COUNTERS)
