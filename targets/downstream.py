"""Where the downstream service is, for the pairs that call it, and its counters for /metrics.

The harness starts the service for runs with a pair that declares `ServerNeeds(downstream=True)`
and hands its URL and certificate authority to the app in PAIRBENCH_DOWNSTREAM_URL and
PAIRBENCH_DOWNSTREAM_CA (docs/architecture.md, "The downstream service"). Without them the app
serves every other pair; a pair that needs the service answers 503 saying so.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import HTTPException, Request

from . import counters

URL_ENV = "PAIRBENCH_DOWNSTREAM_URL"
CA_ENV = "PAIRBENCH_DOWNSTREAM_CA"
STATS_PATH = "/stats"
STATS_TIMEOUT_S = 2.0  # a scrape of /metrics waits this long for the service's counts
UNAVAILABLE_STATUS = 503


@dataclass(frozen=True)
class Downstream:
    """The service's address and the certificate authority that signed its certificate."""

    url: str
    ca: str  # a PEM file

    @classmethod
    def from_env(cls) -> Downstream | None:
        """PAIRBENCH_DOWNSTREAM_URL and _CA, or None when the app runs without the service."""
        url, ca = os.environ.get(URL_ENV), os.environ.get(CA_ENV)
        if not url or not ca:
            return None
        if not url.startswith(("https://127.", "https://localhost")):
            raise RuntimeError(f"{URL_ENV}={url}: the downstream must be on loopback, over https")
        return cls(url.rstrip("/"), ca)

    def trust(self) -> ssl.SSLContext:
        """A TLS context that verifies the service against its CA, and only that CA."""
        return ssl.create_default_context(cafile=self.ca)


def of(request: Request) -> Downstream:
    """The app's downstream, or a 503 naming what is missing (a handler's dependency)."""
    found: Downstream | None = getattr(request.app.state, "downstream", None)
    if found is None:
        raise HTTPException(
            UNAVAILABLE_STATUS,
            f"no downstream service: set {URL_ENV} and {CA_ENV} (the harness does, for pairs"
            " that declare ServerNeeds(downstream=True))",
        )
    return found


@contextlib.asynccontextmanager
async def stats_reader(app: Any) -> AsyncIterator[None]:
    """For the app's lifespan: where the service is, and a client that reads its /stats."""
    app.state.downstream = Downstream.from_env()
    app.state.downstream_stats = None
    if app.state.downstream is None:
        yield
        return
    async with httpx.AsyncClient(
        base_url=app.state.downstream.url,
        verify=app.state.downstream.trust(),
        timeout=STATS_TIMEOUT_S,
    ) as client:
        app.state.downstream_stats = client
        yield


async def scraped(app: Any, reset_peak: bool = False) -> dict[str, tuple[str, float]]:
    """The service's counts now, by metric name (nothing without a service, or unreadable);
    `reset_peak` then starts a new window for its peaks, as /metrics?reset_peak=1 asks."""
    client: httpx.AsyncClient | None = getattr(app.state, "downstream_stats", None)
    if client is None:
        return {}
    try:
        response = await client.get(STATS_PATH, params={"reset": 1} if reset_peak else None)
        stats = response.json() if response.status_code == httpx.codes.OK else {}
    except (httpx.HTTPError, ValueError):
        return {}
    values: dict[str, tuple[str, float]] = {}
    if "connections" in stats:
        values[counters.DOWNSTREAM_CONNECTIONS_METRIC] = (
            "TCP (and TLS) connections the downstream service accepted",
            float(stats["connections"]),
        )
    if "calls" in stats:
        values[counters.DOWNSTREAM_CALLS_METRIC] = (
            "Calls the downstream service answered",
            float(stats["calls"]),
        )
    if "peak_open" in stats:
        values[counters.DOWNSTREAM_PEAK_METRIC] = (
            "Most calls open at the downstream service at once (served or queued)",
            float(stats["peak_open"]),
        )
    if "rejected" in stats:
        values[counters.DOWNSTREAM_REJECTED_METRIC] = (
            "Calls the downstream service refused over its concurrency limit",
            float(stats["rejected"]),
        )
    return values
