"""json_encode: every variant sends the same rows from one query; only the serializer differs."""

from __future__ import annotations

import asyncio
from datetime import datetime

import httpx
import psycopg
import pytest

from pairbench.harness import services
from pairbench.targets.pairs.json_encode import MAX_ROWS, MICRO_ROWS, pair
from pairbench.targets.registry import MICRO_REDIS_DATABASE, MicroServers

from .counting import get_counting

VARIANTS = list(pair.variants)
TEST_ROWS = 2_000  # the test profile's


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role) for v in pair.variants.values()] == [
        ("encoder", "bad"),
        ("response_model", "middle"),
        ("dump_json", "good"),
        ("orjson_bytes", "good"),
    ]


@pytest.mark.parametrize("rows,returned", [(1, 1), (100, 100), (MAX_ROWS, TEST_ROWS)])
def test_same_rows_from_every_variant(target: httpx.Client, rows: int, returned: int) -> None:
    bodies = {v: target.get(f"{pair.path(v)}?rows={rows}") for v in VARIANTS}
    assert all(r.status_code == 200 for r in bodies.values()), bodies
    assert all(r.headers["content-type"] == "application/json" for r in bodies.values())
    parsed = {v: r.json() for v, r in bodies.items()}
    first = parsed["encoder"]
    assert all(body == first for body in parsed.values()), {v: len(b) for v, b in parsed.items()}
    assert len(first) == returned
    assert [row["id"] for row in first] == list(range(1, returned + 1))
    # Every type of the row came through as the same JSON value: the timestamp as an ISO
    # string without an offset, the float and the tags list as they are.
    row = first[0]
    assert isinstance(row["rating"], float) and isinstance(row["in_stock"], bool)
    assert (
        isinstance(row["tags"], list) and datetime.fromisoformat(row["updated_at"]).tzinfo is None
    )


def test_the_body_matches_the_table(target: httpx.Client, servers: services.Endpoints) -> None:
    body = target.get(f"{pair.path('orjson_bytes')}?rows=50").json()
    with psycopg.connect(servers.pg_dsn) as conn:
        rows = conn.execute(
            "SELECT id, sku, price_cents, rating, tags, updated_at FROM json_rows ORDER BY id"
            " LIMIT 50"
        ).fetchall()
    assert [
        (r["id"], r["sku"], r["price_cents"], r["rating"], r["tags"], r["updated_at"]) for r in body
    ] == [(i, s, p, f, t, u.isoformat()) for i, s, p, f, t, u in rows]


@pytest.mark.parametrize("rows", [10, 1_000])
def test_one_query_and_the_same_bytes_on_the_wire(target: httpx.Client, rows: int) -> None:
    sent = {}
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?rows={rows}")
        assert response.status_code == 200, variant
        assert counters["queries"] == 1, variant
        sent[variant] = counters["response_bytes"]
        assert sent[variant] == len(response.content), variant
    # Every serializer writes compact JSON with the same shortest float repr: the same bytes,
    # so what differs between the variants is the server's CPU alone.
    assert len(set(sent.values())) == 1, sent


@pytest.mark.parametrize("query", ["", "rows=0", f"rows={MAX_ROWS + 1}", "rows=ten"])
def test_out_of_bounds_is_422_without_a_query(target: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?{query}")
        assert response.status_code == 422, (variant, query)
        assert counters["queries"] == 0, (variant, query)


def test_the_micro_cores_write_the_same_bytes(servers: services.Endpoints) -> None:
    # The micro suite's own Redis database: opening empties it (FLUSHDB), and the session's
    # app keeps its keys in database 0 (uvicorn_workers' calibration lost them to this once).
    redis_url = services.redis_database(servers.redis_url, MICRO_REDIS_DATABASE)

    async def run() -> dict[str, bytes]:
        async with (
            MicroServers.open(servers.pg_dsn, redis_url) as on,
            pair.micro_servers(on) as ready,
        ):
            assert len(ready.resource) == MICRO_ROWS
            return {name: await micro.core(ready) for name, micro in pair.micros.items()}

    written = asyncio.run(run())
    assert set(written) == {"encoder", "dump_json", "orjson_bytes"}
    assert len(set(written.values())) == 1, {k: len(v) for k, v in written.items()}
