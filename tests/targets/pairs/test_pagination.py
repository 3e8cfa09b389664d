"""Pagination: OFFSET and keyset serve the same bytes at the same depth, each in one query."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pairbench.harness import postgres, server, services
from pairbench.targets.pairs.pagination import (
    KEYSET_SQL,
    MAX_CURSOR_CHARS,
    MAX_LIMIT,
    MAX_OFFSET,
    OFFSET_SQL,
    pair,
)
from pairbench.targets.seeding import seed

from .counting import get_counting

# The catalogue the harness reads counters with (docs/architecture.md, "What the targets describe").

LIMIT = 20
CHAIN_LIMIT = 7  # not a divisor of anything: pages end at arbitrary rows, ties included
CHAIN_PAGES = 40


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(target: httpx.Client, offset: int) -> str | None:
    response = target.get(f"/pagination/cursor?offset={offset}")
    assert response.status_code == 200
    cursor: str | None = response.json()["cursor"]
    return cursor


def _keyset(target: httpx.Client, cursor: str | None, limit: int) -> httpx.Response:
    after = "" if cursor is None else f"&after={cursor}"
    return target.get(f"/pagination/keyset?limit={limit}{after}")


@pytest.fixture(scope="module")
def total(servers: services.Endpoints) -> int:
    """How many feed items the session's dataset holds."""
    with psycopg.connect(servers.pg_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM feed_items").fetchone()
    assert row is not None and row[0] > 5000
    return int(row[0])


def test_the_cursor_helper_is_a_route_not_a_variant() -> None:
    assert list(pair.variants) == ["offset", "keyset"]
    assert "cursor" in pair.routes  # a helper, not a variant: never benchmarked


DEPTHS: dict[str, Callable[[int], int]] = {
    "first": lambda total: 0,
    "second row": lambda total: 1,
    "57": lambda total: 57,
    "5000": lambda total: 5000,
    "last full page": lambda total: total - LIMIT,
    "last partial page": lambda total: total - 7,
    "just past the end": lambda total: total,
    "far past the end": lambda total: total + 1000,
}


@pytest.mark.parametrize("depth", DEPTHS.values(), ids=DEPTHS.keys())
def test_same_bytes_at_the_same_depth(
    target: httpx.Client, total: int, depth: Callable[[int], int]
) -> None:
    k = depth(total)
    by_offset = target.get(f"/pagination/offset?offset={k}&limit={LIMIT}")
    by_keyset = _keyset(target, _cursor(target, k), LIMIT)
    assert by_offset.status_code == by_keyset.status_code == 200
    assert by_keyset.content == by_offset.content
    page = by_offset.json()
    assert len(page["items"]) == max(0, min(LIMIT, total - k))
    assert (page["next_cursor"] is None) == (k + LIMIT >= total)  # has-next without COUNT(*)


def test_first_page_without_a_cursor_or_with_an_empty_one(target: httpx.Client) -> None:
    first = target.get("/pagination/offset").content
    assert target.get("/pagination/keyset").content == first
    assert target.get("/pagination/keyset?after=").content == first  # a template's empty slot
    assert len(json.loads(first)["items"]) == 20  # the default page size
    assert _cursor(target, 0) is None


def test_newest_first_with_ties_broken_by_id(target: httpx.Client) -> None:
    items = target.get(f"/pagination/offset?offset=1000&limit={MAX_LIMIT}").json()["items"]
    keys = [(i["created_at"], i["id"]) for i in items]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
    assert len({i["created_at"] for i in items}) < len(items)  # the data has ties


def _follow(target: httpx.Client, cursor: str | None, pages: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(pages):
        page = _keyset(target, cursor, CHAIN_LIMIT).json()
        out.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return out


def test_following_cursors_reproduces_the_offset_pages(target: httpx.Client) -> None:
    pages = _follow(target, None, CHAIN_PAGES)
    assert len(pages) == CHAIN_PAGES
    for i, page in enumerate(pages):
        by_offset = target.get(f"/pagination/offset?offset={i * CHAIN_LIMIT}&limit={CHAIN_LIMIT}")
        assert page == by_offset.json(), f"page {i}"
    # At least one page boundary falls inside a run of equal timestamps: the id tie-breaker is
    # what keeps the row after the boundary from being skipped or repeated.
    boundaries = itertools.pairwise(pages)
    assert any(a["items"][-1]["created_at"] == b["items"][0]["created_at"] for a, b in boundaries)


def test_following_cursors_to_the_end(target: httpx.Client, total: int) -> None:
    start = total - 3 * CHAIN_LIMIT - 2
    pages = _follow(target, _cursor(target, start), CHAIN_PAGES)
    assert [len(p["items"]) for p in pages] == [CHAIN_LIMIT] * 3 + [2]
    assert pages[-1]["next_cursor"] is None
    for i, page in enumerate(pages):
        offset = start + i * CHAIN_LIMIT
        assert page == target.get(f"/pagination/offset?offset={offset}&limit={CHAIN_LIMIT}").json()


KEY = "2025-01-01T00:00:00+00:00"
BAD_CURSORS = {
    "not base64": ("not base64!", "not urlsafe base64"),
    "one char": ("a", "not urlsafe base64"),
    "standard alphabet": (base64.b64encode(b'["?>?>"]').decode(), "not urlsafe base64"),
    "not utf-8": (_b64(b"\xff\xfe\xfd"), "not urlsafe base64"),
    "not json": (_b64(b"hello"), "not urlsafe base64"),
    "an object": (_b64(b'{"created_at": "x", "id": 1}'), "expected"),
    "one element": (_b64(b'["2025-01-01T00:00:00+00:00"]'), "expected"),
    "three elements": (_b64(json.dumps([KEY, 1, 2]).encode()), "expected"),
    "id as string": (_b64(json.dumps([KEY, "7"]).encode()), "id must be"),
    "id as bool": (_b64(json.dumps([KEY, True]).encode()), "id must be"),
    "id as float": (_b64(json.dumps([KEY, 7.5]).encode()), "id must be"),
    "id zero": (_b64(json.dumps([KEY, 0]).encode()), "id must be"),
    "id beyond bigint": (_b64(json.dumps([KEY, 2**63]).encode()), "id must be"),
    "time as number": (_b64(json.dumps([1735689600, 7]).encode()), "created_at must be"),
    "time not iso": (_b64(json.dumps(["yesterday", 7]).encode()), "not an ISO 8601"),
    "time naive": (_b64(json.dumps(["2025-01-01T00:00:00", 7]).encode()), "UTC offset"),
}


@pytest.mark.parametrize("cursor,message", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
def test_bad_cursor_is_a_400_that_says_why(target: httpx.Client, cursor: str, message: str) -> None:
    response, counters = get_counting(target, f"/pagination/keyset?after={cursor}")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("invalid cursor:") and message in detail
    assert counters["queries"] == 0  # rejected before a connection is acquired


def test_tampered_cursor_is_rejected(target: httpx.Client) -> None:
    cursor = _cursor(target, 100)
    assert cursor is not None
    tampered = ("A" if cursor[0] != "A" else "B") + cursor[1:]
    assert _keyset(target, tampered, LIMIT).status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        f"/pagination/offset?offset={MAX_OFFSET + 1}",
        "/pagination/offset?offset=abc",
        "/pagination/offset?limit=0",
        f"/pagination/offset?limit={MAX_LIMIT + 1}",
        "/pagination/keyset?limit=0",
        f"/pagination/keyset?limit={MAX_LIMIT + 1}",
        f"/pagination/keyset?after={'A' * (MAX_CURSOR_CHARS + 1)}",
        "/pagination/cursor?offset=-1",
        f"/pagination/cursor?offset={MAX_OFFSET + 1}",
    ],
)
def test_out_of_bounds_is_422(target: httpx.Client, path: str) -> None:
    response, counters = get_counting(target, path)
    assert response.status_code == 422
    assert counters["queries"] == 0


@pytest.mark.parametrize("depth", [0, 57, 5000])
def test_one_query_per_request(target: httpx.Client, depth: int) -> None:
    cursor = _cursor(target, depth)
    paths = {
        "offset": f"/pagination/offset?offset={depth}&limit={LIMIT}",
        "keyset": f"/pagination/keyset?limit={LIMIT}" + (f"&after={cursor}" if cursor else ""),
    }
    for variant, path in paths.items():
        response, counters = get_counting(target, path)
        assert response.status_code == 200, variant
        assert counters["queries"] == 1, variant
        assert counters["db_connections_opened"] == 0, variant


async def _explain(dsn: str, sql: str, *args: Any) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        # A real key deep in the table, not a guess that might sit past one end of it.
        key = await conn.fetchrow(
            "SELECT created_at, id FROM feed_items ORDER BY created_at DESC, id DESC"
            " LIMIT 1 OFFSET 10000"
        )
        assert key is not None
        rows = await conn.fetch(f"EXPLAIN {sql}", *(args or (key["created_at"], key["id"], 21)))
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


def test_keyset_seeks_on_the_matching_index(servers: services.Endpoints) -> None:
    plan = asyncio.run(_explain(servers.pg_dsn, KEYSET_SQL))
    assert "Index Scan using feed_items_created_at_id_idx on feed_items" in plan
    assert "Index Cond: (ROW(created_at, id) < ROW(" in plan  # a seek, not a filter
    assert "Sort" not in plan and "Seq Scan" not in plan  # rows come out already in order


def test_offset_walks_the_same_index(servers: services.Endpoints) -> None:
    # The comparison is fair: OFFSET gets the same index; it must still step over the rows.
    plan = asyncio.run(_explain(servers.pg_dsn, OFFSET_SQL, LIMIT + 1, 5000))
    assert "Index Scan using feed_items_created_at_id_idx on feed_items" in plan


EXPLAIN = {"X-Pairbench-Explain": "1"}


def _plans(target: httpx.Client, path: str) -> list[dict[str, Any]]:
    response = target.get(path, headers=EXPLAIN)
    assert response.status_code == 200
    plans: list[dict[str, Any]] = target.get("/_pairbench/plans").json()
    return plans


def test_the_plans_endpoint_shows_both_reading_the_index(target: httpx.Client) -> None:
    (by_offset,) = _plans(target, "/pagination/offset?offset=5000")
    assert by_offset["access"] == ["Index Scan on feed_items"]
    (by_keyset,) = _plans(target, f"/pagination/keyset?after={_cursor(target, 5000)}")
    assert by_keyset["access"] == ["Index Scan on feed_items"]
    assert "(created_at, id) < ($1, $2)" in by_keyset["sql"]


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


def _counting(client: httpx.Client, path: str) -> tuple[httpx.Response, dict[str, float]]:
    """The response and the deltas of the lesson's pg_stat_statements counters."""
    catalogue = client.get("/pairs").json()["counters"]

    def read(text: str) -> dict[str, float]:
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        return {
            name: next(s.value for s in samples if s.name == catalogue[name]["metric"])
            for name in ("db_rows", "db_buffers")
        }

    before = read(client.get("/metrics").text)
    response = client.get(path)
    after = read(client.get("/metrics").text)
    return response, {k: after[k] - before[k] for k in after}


def test_buffers_grow_with_the_offset_and_not_with_keyset(
    preloaded_server: str, servers: services.Endpoints, tmp_path: Path
) -> None:
    assert pair.counters[0] == "db_buffers"
    running = server.start(preloaded_server, servers.redis_url, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            client.get("/pagination/offset?offset=0")  # warm: the first plan costs catalog reads
            deltas = {}
            for depth in (0, 10_000):
                response, deltas[depth] = _counting(
                    client, f"/pagination/offset?offset={depth}&limit=20"
                )
                assert response.status_code == 200
            cursor = client.get("/pagination/cursor?offset=10000").json()["cursor"]
            _, keyset = _counting(client, f"/pagination/keyset?limit=20&after={cursor}")
    finally:
        running.stop()
    # limit + 1 rows (the last one says a next page exists), plus the pool's reset on release
    # (its pg_advisory_unlock_all() returns a row): the rows returned do not grow with depth,
    # the buffers walked to skip do.
    assert deltas[0]["db_rows"] >= 21
    assert deltas[10_000]["db_rows"] == deltas[0]["db_rows"]
    assert deltas[10_000]["db_buffers"] > 10 * deltas[0]["db_buffers"]
    assert keyset["db_buffers"] < deltas[10_000]["db_buffers"] / 10


def test_the_400_is_documented_on_keyset_only(target: httpx.Client) -> None:
    paths = target.get("/openapi.json").json()["paths"]
    keyset = paths[pair.path("keyset")]["get"]["responses"]
    assert keyset["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    # OFFSET and the cursor route decode nothing: every bad value is FastAPI's 422.
    for name in ("offset", "cursor"):
        assert set(paths[pair.path(name)]["get"]["responses"]) == {"200", "422"}, name
