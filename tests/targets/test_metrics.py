"""The generic counters on /metrics, read through the catalogue that describe publishes:
response bytes, Redis commands, peak memory, and pg_stat_statements' rows and buffers."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pairbench.harness import postgres, server, services
from pairbench.targets.seeding import seed

MIB = 1 << 20
ALLOCATE_MB = 128
PEAK_SLACK_MB = 28  # the allocation shows nearly whole; the rest is the allocator's and ours


def _read(text: str, counters: dict[str, Any]) -> dict[str, float]:
    """Every catalogued counter found in a scrape, by counter name."""
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    values: dict[str, float] = {}
    for name, spec in counters.items():
        for sample in samples:
            if sample.name == spec["metric"] and all(
                sample.labels.get(k) == v for k, v in spec["labels"].items()
            ):
                values[name] = values.get(name, 0.0) + sample.value
    return values


@pytest.fixture(scope="module")
def counters(target: httpx.Client) -> dict[str, Any]:
    catalogue: dict[str, Any] = target.get("/pairs").json()["counters"]
    return catalogue


def _scrape(client: httpx.Client, counters: dict[str, Any], **params: int) -> dict[str, float]:
    return _read(client.get("/metrics", params=params).text, counters)


def _delta(
    client: httpx.Client, counters: dict[str, Any], method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, dict[str, float]]:
    before = _scrape(client, counters)
    response = client.request(method, path, **kwargs)
    after = _scrape(client, counters)
    return response, {k: after[k] - before.get(k, 0.0) for k in after}


def test_the_catalogue_reads_ratios_and_means(counters: dict[str, Any]) -> None:
    assert counters["cache_hits"]["per"] == ["cache_hits", "cache_misses"]
    assert counters["cache_hits"]["scale"] == 100
    assert counters["loop_lag_seconds_sum"]["per"] == ["loop_lag_samples"]
    assert counters["loop_lag_seconds_sum"]["scale"] == 1000
    assert counters["peak_rss"]["kind"] == "peak"


def test_response_bytes_are_the_body_bytes(target: httpx.Client, counters: dict[str, Any]) -> None:
    sizes = []
    for n in (1, 100):
        response, delta = _delta(target, counters, "GET", f"/n_plus_one/join?n={n}")
        assert response.status_code == 200
        assert delta["response_bytes"] == len(response.content)
        sizes.append(delta["response_bytes"])
    assert sizes[1] > 10 * sizes[0]


def test_a_cache_hit_is_one_redis_command(target: httpx.Client, counters: dict[str, Any]) -> None:
    path = "/cache/cache_aside?customer=41"
    target.get(path)  # fill: the next read is a hit, if within the TTL
    response, delta = _delta(target, counters, "GET", path)
    assert response.status_code == 200
    assert (delta["cache_hits"], delta["redis_commands"]) == (1, 1)  # one GET; INFO not counted
    response, delta = _delta(target, counters, "GET", "/n_plus_one/join?n=3")
    assert delta["redis_commands"] == 0


def test_peak_memory_shows_an_allocation_and_resets(
    target: httpx.Client, counters: dict[str, Any]
) -> None:
    start = _scrape(target, counters, reset_peak=1)["peak_rss"]
    assert target.get(f"/probe/allocate?mb={ALLOCATE_MB}").status_code == 200
    peak = _scrape(target, counters)["peak_rss"]
    assert peak - start >= (ALLOCATE_MB - PEAK_SLACK_MB) * MIB
    after_reset = _scrape(target, counters, reset_peak=1)["peak_rss"]
    assert peak - after_reset >= (ALLOCATE_MB - PEAK_SLACK_MB) * MIB


def _preloaded(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW shared_preload_libraries").fetchone()
    return row is not None and "pg_stat_statements" in row[0]


def test_pg_stat_statements_counters_only_when_loaded(
    target: httpx.Client, servers: services.Endpoints, counters: dict[str, Any]
) -> None:
    values = _scrape(target, counters)
    loaded = _preloaded(servers.pg_dsn)
    assert ("db_rows" in values) == loaded and ("db_buffers" in values) == loaded


@pytest.fixture(scope="module")
def preloaded_server() -> Iterator[str]:
    """A PostgreSQL of its own with pg_stat_statements preloaded, pagination seeded: its DSN."""
    # Not under pytest's tmp folders: they are 0700, and as root the postgres user must enter.
    state = Path(tempfile.mkdtemp(prefix="pairbench-pgss-"))
    state.chmod(0o711)
    first = postgres.start(state)
    try:
        with psycopg.connect(first.dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    finally:
        first.stop()
    running = postgres.start(state)  # the same cluster, now with the library loaded
    try:
        asyncio.run(seed(running.dsn, "test", ["pagination"]))
        yield running.dsn
    finally:
        running.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_pg_stat_statements_rows_and_buffers_grow_with_offset(
    preloaded_server: str, servers: services.Endpoints, tmp_path: Path
) -> None:
    running = server.start(preloaded_server, servers.redis_url, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            catalogue = client.get("/pairs").json()["counters"]
            client.get("/pagination/offset?offset=0")  # warm: the first plan costs catalog reads
            deltas = {}
            for depth in (0, 10_000):
                response, deltas[depth] = _delta(
                    client, catalogue, "GET", f"/pagination/offset?offset={depth}&limit=20"
                )
                assert response.status_code == 200
            keyset_cursor = client.get("/pagination/cursor?offset=10000").json()["cursor"]
            _, keyset = _delta(
                client, catalogue, "GET", f"/pagination/keyset?limit=20&after={keyset_cursor}"
            )
    finally:
        running.stop()
    # limit + 1 rows (the last one says a next page exists), plus the pool's reset on release
    # (its pg_advisory_unlock_all() returns a row): the rows returned do not grow with depth,
    # the buffers walked to skip do.
    assert deltas[0]["db_rows"] >= 21
    assert deltas[10_000]["db_rows"] == deltas[0]["db_rows"]
    assert deltas[10_000]["db_buffers"] > 10 * deltas[0]["db_buffers"]
    assert keyset["db_buffers"] < deltas[10_000]["db_buffers"] / 10
