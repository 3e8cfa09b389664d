"""stream_export: every variant sends the same rows; the buffered one holds them all before its
first byte, the cursors one batch at a time, and the peak-memory counter tells them apart."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from pairbench.harness import catalogue, scenario, services, verify
from pairbench.scenarios import SCENARIO_DIR
from pairbench.targets.pairs.stream_export import BATCH_ROWS, MAX_ROWS, MICRO_ROWS, pair
from pairbench.targets.registry import MICRO_REDIS_DATABASE, MicroServers

from .counting import get_counting

VARIANTS = list(pair.variants)
TEST_ROWS = 20_000  # the test profile's table
MIB = 1 << 20
# A buffered export of the test table grew the server's peak by 12.6 to 19.9 MiB here (the
# records, their dicts and the body at once); cursor_lines by 0.7 to 1.0 MiB, cursor_array by
# 4.4 to 4.6 MiB, whichever variant ran before it.
BUFFERED_GROWTH_MIB = 10
STREAMED_GROWTH_MIB = 6
TTFB_TRIES = 3


def _rows(response: httpx.Response) -> list[dict[str, object]]:
    """The rows, read by the framing the reply declares."""
    if response.headers["content-type"] == "application/json":
        rows: list[dict[str, object]] = response.json()
        return rows
    return [json.loads(line) for line in response.text.splitlines()]


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role) for v in pair.variants.values()] == [
        ("buffered", "bad"),
        ("cursor_array", "good"),
        ("cursor_lines", "good"),
    ]


@pytest.mark.parametrize(
    "rows,returned",
    [(1, 1), (BATCH_ROWS, BATCH_ROWS), (BATCH_ROWS + 1, BATCH_ROWS + 1), (MAX_ROWS, TEST_ROWS)],
)
def test_same_rows_from_every_variant(target: httpx.Client, rows: int, returned: int) -> None:
    replies = {v: target.get(f"{pair.path(v)}?rows={rows}") for v in VARIANTS}
    assert all(r.status_code == 200 for r in replies.values())
    assert replies["cursor_lines"].headers["content-type"] == "application/x-ndjson"
    # The streamed array is byte for byte the buffered one: chunks joined by the same commas.
    assert replies["cursor_array"].content == replies["buffered"].content
    parsed = {v: _rows(r) for v, r in replies.items()}
    assert parsed["cursor_lines"] == parsed["buffered"]
    assert [row["id"] for row in parsed["buffered"]] == list(range(1, returned + 1))


def test_the_rows_are_the_table(target: httpx.Client, servers: services.Endpoints) -> None:
    lines = _rows(target.get(f"{pair.path('cursor_lines')}?rows=50"))
    with psycopg.connect(servers.pg_dsn) as conn:
        rows = conn.execute(
            "SELECT id, account, amount_cents, memo, created_at FROM export_rows ORDER BY id"
            " LIMIT 50"
        ).fetchall()
    assert [
        (r["id"], r["account"], r["amount_cents"], r["memo"], r["created_at"]) for r in lines
    ] == [(i, a, c, m, t.isoformat()) for i, a, c, m, t in rows]


@pytest.mark.parametrize("rows", [10, 5_000])
def test_rows_held_at_once_and_the_bytes_sent(target: httpx.Client, rows: int) -> None:
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?rows={rows}")
        assert response.status_code == 200, variant
        held = rows if variant == "buffered" else min(rows, BATCH_ROWS)
        assert counters["rows_in_memory"] == held, variant
        assert counters["response_bytes"] == len(response.content), variant


def _peak_growth_mib(target: httpx.Client, variant: str) -> float:
    """How far one export at the table's size raised the server's peak memory, in MiB."""
    start, _ = get_counting(target, "/metrics?reset_peak=1&release=1")
    start_rss = float(_peak(start.text))
    response = target.get(f"{pair.path(variant)}?rows={TEST_ROWS}")
    assert response.status_code == 200
    return (float(_peak(target.get("/metrics").text)) - start_rss) / MIB


def _peak(text: str) -> str:
    line = next(ln for ln in text.splitlines() if ln.startswith("pairbench_peak_rss_bytes "))
    return line.split()[1]


def test_peak_memory_is_each_variants_own(target: httpx.Client) -> None:
    # Alternating, as the rounds do: the buffered export's freed memory must not be charged to
    # the streamed one that follows it (a window opens after the allocator gave it back).
    growth: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(2):
        for variant in VARIANTS:
            growth[variant].append(_peak_growth_mib(target, variant))
    assert min(growth["buffered"]) >= BUFFERED_GROWTH_MIB, growth
    assert max(growth["cursor_array"] + growth["cursor_lines"]) <= STREAMED_GROWTH_MIB, growth


def _first_byte_and_end_ms(target: httpx.Client, variant: str) -> tuple[float, float]:
    started = time.perf_counter()
    with target.stream("GET", f"{pair.path(variant)}?rows={TEST_ROWS}") as response:
        first = time.perf_counter()
        assert response.status_code == 200
        response.read()
    return (first - started) * 1000, (time.perf_counter() - started) * 1000


def test_the_streamed_reply_starts_before_the_buffered_one(target: httpx.Client) -> None:
    timings = {v: [_first_byte_and_end_ms(target, v) for _ in range(TTFB_TRIES)] for v in VARIANTS}
    first = {v: statistics.median(t[0] for t in ts) for v, ts in timings.items()}
    # The buffered reply's first byte comes after the whole body is built; the cursors' before
    # the first fetch. A loose bound: the shared machine's noise must not fail it.
    assert first["cursor_array"] * 5 < first["buffered"], timings
    assert first["cursor_lines"] * 5 < first["buffered"], timings


def test_a_client_that_leaves_mid_stream_frees_the_connection(
    target: httpx.Client, servers: services.Endpoints
) -> None:
    for _ in range(3):
        with target.stream("GET", f"{pair.path('cursor_lines')}?rows={TEST_ROWS}") as response:
            next(response.iter_raw())  # one chunk, then hang up
    # The generator is closed, its transaction rolled back and the connection back in the pool:
    # no server backend stays in the export's transaction.
    deadline = time.monotonic() + 5
    while True:
        with psycopg.connect(servers.pg_dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%FROM export_rows%'"
                " AND state <> 'idle' AND pid <> pg_backend_pid()"
            ).fetchone()
        if (row is not None and row[0] == 0) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert row is not None and row[0] == 0
    assert _rows(target.get(f"{pair.path('cursor_lines')}?rows=3"))[2]["id"] == 3


@pytest.mark.parametrize("query", ["", "rows=0", f"rows={MAX_ROWS + 1}", "rows=ten"])
def test_out_of_bounds_is_422_without_a_query(target: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?{query}")
        assert response.status_code == 422, (variant, query)
        assert counters["queries"] == 0, (variant, query)


def test_the_openapi_document_declares_each_framing(target: httpx.Client) -> None:
    paths = target.get("/openapi.json").json()["paths"]
    content = {v: paths[pair.path(v)]["get"]["responses"]["200"]["content"] for v in VARIANTS}
    listed = {v: content[v]["application/json"]["schema"] for v in ("buffered", "cursor_array")}
    assert listed["buffered"]["type"] == listed["cursor_array"]["type"] == "array"
    assert listed["buffered"]["items"] == listed["cursor_array"]["items"]
    # JSON lines are not one JSON document: their own media type, no JSON body schema.
    assert list(content["cursor_lines"]) == ["application/x-ndjson"]
    assert "items" not in content["cursor_lines"]["application/x-ndjson"].get("schema", {})


def test_the_micro_cores(servers: services.Endpoints, target: httpx.Client) -> None:
    """Both cores return the bytes the client gets: the same JSON array."""
    redis_url = services.redis_database(servers.redis_url, MICRO_REDIS_DATABASE)

    async def run() -> dict[str, object]:
        async with (
            MicroServers.open(servers.pg_dsn, redis_url) as opened,
            pair.micro_servers(opened) as on,
        ):
            return {name: await m.core(on) for name, m in pair.micros.items()}

    served = target.get(f"{pair.path('buffered')}?rows={MICRO_ROWS}").content
    assert asyncio.run(run()) == dict.fromkeys(pair.micros, served)


def test_the_scenario_verifies(target: httpx.Client, tmp_path: Path) -> None:
    path = tmp_path / "stream_export.toml"
    path.write_text((SCENARIO_DIR / "stream_export.toml").read_text())
    spec = scenario.load_scenario(path)
    info = catalogue.resolve(spec, catalogue.fetch(str(target.base_url)))
    outcome = verify.verify_pair(target, info, spec.load("quick").knob_values)
    assert outcome.passed, outcome.first_failure
    names = {(c.name, c.variant) for c in outcome.checks}
    assert {("equal_rows", "cursor_array"), ("equal_rows", "cursor_lines")} <= names
    assert ("rows_in_memory_per_request", "buffered") in names
