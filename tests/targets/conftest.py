"""The targets app under a real uvicorn, on the session's real servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pairbench.harness import server, services


@pytest.fixture(scope="session")
def target(
    servers: services.Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """An HTTP client bound to a running targets app."""
    log = Path(tmp_path_factory.mktemp("target")) / "server.log"
    running = server.start(servers.pg_dsn, servers.redis_url, log)
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            yield client
    finally:
        running.stop()
