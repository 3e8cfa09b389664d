"""The generic counters on /metrics, read through the catalogue that describe publishes:
response bytes, peak memory, and pg_stat_statements only where it is loaded. (Counters that
carry a pair's lesson are tested with the pair: Redis commands in test_cache.py, buffers in
test_pagination.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pairbench.harness import metricsclient, services
from pairbench.targets import metrics

MIB = 1 << 20
ALLOCATE_MB = 128
PEAK_SLACK_MB = 28  # the allocation shows nearly whole; the rest is the allocator's and ours


def read_counters(text: str, counters: dict[str, Any]) -> dict[str, float]:
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
    return read_counters(client.get("/metrics", params=params).text, counters)


def test_the_catalogue_reads_means_and_peaks(counters: dict[str, Any]) -> None:
    assert counters["loop_lag_seconds_sum"]["per"] == ["loop_lag_samples"]
    assert counters["loop_lag_seconds_sum"]["scale"] == 1000  # mean lag in ms
    assert counters["peak_rss"]["kind"] == "peak"
    assert counters["queries"]["labels"] == {"kind": "app"}


@pytest.mark.parametrize("n", [0, 1, 1000, 1_000_000])
def test_response_bytes_are_the_body_bytes(
    target: httpx.Client, counters: dict[str, Any], n: int
) -> None:
    before = _scrape(target, counters)
    response = target.get(f"/probe/bytes?n={n}")
    after = _scrape(target, counters)
    assert len(response.content) == n
    assert after["response_bytes"] - before["response_bytes"] == n  # the scrapes count nothing


def test_peak_memory_shows_an_allocation_and_resets(
    target: httpx.Client, counters: dict[str, Any]
) -> None:
    start = _scrape(target, counters, reset_peak=1)["peak_rss"]
    assert target.get(f"/probe/allocate?mb={ALLOCATE_MB}").status_code == 200
    peak = _scrape(target, counters)["peak_rss"]
    assert peak - start >= (ALLOCATE_MB - PEAK_SLACK_MB) * MIB
    after_reset = _scrape(target, counters, reset_peak=1)["peak_rss"]
    assert peak - after_reset >= (ALLOCATE_MB - PEAK_SLACK_MB) * MIB


HEAP_BLOCK_BYTES = 1024  # above pymalloc's 512: each block comes from glibc's heap, not mmap
HEAP_BLOCKS = 100_000  # about 100 MiB


@pytest.mark.skipif(
    not (metrics.HAS_VMHWM and metrics._MALLOC_TRIM is not None),
    reason="needs /proc's VmHWM and glibc's malloc_trim",
)
def test_a_new_peak_window_does_not_start_with_memory_freed_before_it() -> None:
    # Many heap blocks, freed but the last: glibc keeps the freed pages below the one still
    # in use, so the resident size stays up until they are trimmed. A window opened then must
    # not charge them to the next variant (a buffered export followed by a streamed one).
    blocks = [bytes(HEAP_BLOCK_BYTES) + bytes([i % 256]) for i in range(HEAP_BLOCKS)]
    last = blocks[-1]
    del blocks
    held = metrics._current_rss()
    window = metrics.Metrics().peak_rss_bytes(reset=True, release=True)
    assert held - window >= HEAP_BLOCKS * HEAP_BLOCK_BYTES // 2, (held / MIB, window / MIB)
    assert len(last) == HEAP_BLOCK_BYTES + 1


def test_only_a_pair_whose_lesson_is_memory_pays_for_the_release() -> None:
    """The release (gc, malloc_trim) stalls the server's loop for tens of ms: a trial's
    before-scrape asks for it only when the pair's lesson counts peak memory."""
    plain, _ = metricsclient.urls("http://t", ["queries", "cpu_seconds"])
    memory, after = metricsclient.urls("http://t", ["rows_in_memory", "peak_rss"])
    assert plain == "http://t/metrics?reset_peak=1"
    assert memory == "http://t/metrics?reset_peak=1&release=1"
    assert after == "http://t/metrics"


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
    assert "redis_commands" in values  # Redis is always there to ask


def test_cpu_seconds_count_work_not_waiting(target: httpx.Client, counters: dict[str, Any]) -> None:
    """The process's CPU time: a 300 ms sleep on the loop costs next to none of it (the pair
    tests show it growing with work: compressing a body costs milliseconds of it)."""
    assert counters["cpu_seconds"]["scale"] == 1000 and counters["cpu_seconds"]["unit"] == "ms"
    target.get("/probe/stall/arm", params={"ms": 300})
    before = _scrape(target, counters)
    assert target.get("/probe/stall").json() == {"stalled_ms": 300}
    after = _scrape(target, counters)
    assert 0 <= after["cpu_seconds"] - before["cpu_seconds"] < 0.15


def test_wall_seconds_advance_and_cores_busy_divides_by_them(
    target: httpx.Client, counters: dict[str, Any]
) -> None:
    """The wall clock on /metrics: a 300 ms stall moves it by at least that, and `cores_busy` is
    CPU seconds per wall second (docs/architecture.md, "The process group")."""
    assert counters["cores_busy"]["per"] == ["wall_seconds"]
    assert counters["cores_busy"]["metric"] == counters["cpu_seconds"]["metric"]
    target.get("/probe/stall/arm", params={"ms": 300})
    before = _scrape(target, counters)
    assert target.get("/probe/stall").json() == {"stalled_ms": 300}
    after = _scrape(target, counters)
    assert after["wall_seconds"] - before["wall_seconds"] >= 0.3


def test_local_metrics_leave_the_servers_out(target: httpx.Client) -> None:
    """`?local=1` (what a process group member's sibling asks for): this process's counters
    only, without the values read from Redis, PostgreSQL and the downstream."""
    names = {
        s.name
        for f in text_string_to_metric_families(target.get("/metrics?local=1").text)
        for s in f.samples
    }
    assert "pairbench_process_cpu_seconds_total" in names
    assert "pairbench_redis_commands_total" not in names
    full = target.get("/metrics").text
    assert "pairbench_redis_commands_total" in full
