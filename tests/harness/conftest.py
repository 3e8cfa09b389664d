"""Fixtures of the harness tests: a target server that also serves the fixture pairs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pairbench.harness import catalogue, seeding, server, services, verify

FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
PAIRS_ENV = {"PAIRBENCH_PAIRS": str(FIXTURE_PAIRS)}
PROFILE = "test"


# Module scope: a target left running for the whole session would keep its pairs' pools open
# against the session's database while other modules count connections there.
@pytest.fixture(scope="module")
def fixture_target(
    servers: services.Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[server.TargetServer]:
    """A target serving the built-in and the fixture pairs (PAIRBENCH_PAIRS); those with tables seeded."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAIRBENCH_PAIRS", str(FIXTURE_PAIRS))  # the seed subprocess inherits it
        seeding.seed(servers.pg_dsn, PROFILE, ["fixture_writes", "fixture_rows"])
    log = tmp_path_factory.mktemp("fixture-target") / "server.log"
    running = server.start(servers.pg_dsn, servers.redis_url, log, extra_env=PAIRS_ENV)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def fixture_server(
    fixture_target: server.TargetServer,
) -> Iterator[tuple[httpx.Client, catalogue.Catalogue]]:
    """An HTTP client on the fixture target, and the target's catalogue (GET /pairs)."""
    with httpx.Client(base_url=fixture_target.url, timeout=verify.REQUEST_TIMEOUT_S) as client:
        yield client, catalogue.fetch(fixture_target.url)
