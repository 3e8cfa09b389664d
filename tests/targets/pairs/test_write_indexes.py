"""write_indexes: both variants insert the same orders; the indexed table writes every row into
each of its indexes, and the WAL shows it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import psycopg
import pytest

from pairbench.harness import metricsclient, services
from pairbench.targets.pairs.write_indexes import (
    FIRST_NEW_ID,
    INDEX_COUNTS,
    INDEXED,
    LEAN,
    MAX_ROWS,
    TABLES,
    pair,
)
from pairbench.targets.registry import document

COUNTERS = document()["counters"]
VARIANTS = list(pair.variants)
SEEDED = 1_000  # the test profile's seeded rows per table


@pytest.fixture
def clean(target: httpx.Client) -> Iterator[httpx.Client]:
    """The target, with the pair's tables back to their seeded rows before and after."""
    assert pair.reset_path is not None
    assert target.post(pair.reset_path).status_code == 200
    yield target
    assert target.post(pair.reset_path).status_code == 200


def _post_counting(client: httpx.Client, path: str) -> tuple[httpx.Response, dict[str, float]]:
    before = client.get("/metrics").text
    response = client.post(path)
    return response, metricsclient.delta(before, client.get("/metrics").text, COUNTERS)


def _state(client: httpx.Client) -> dict[str, object]:
    assert pair.state_path is not None
    return dict(client.get(pair.state_path).json())


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role, v.method) for v in pair.variants.values()] == [
        ("indexed", "bad", "POST"),
        ("lean", "good", "POST"),
    ]


def test_the_tables_differ_only_in_their_indexes(servers: services.Endpoints) -> None:
    digest = (
        "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t.id)) FROM {} AS t WHERE id < %s"
    )
    with psycopg.connect(servers.pg_dsn) as conn:
        seeded = {
            conn.execute(digest.format(table), (FIRST_NEW_ID,)).fetchone() for table in TABLES
        }
        indexes = {
            table: conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = %s", (table,)
            ).fetchone()
            for table in TABLES
        }
    assert len(seeded) == 1
    ((count, _),) = seeded
    assert count == SEEDED
    # The primary key, and `n` secondary indexes more.
    assert indexes == {LEAN: (1,), **{INDEXED[n]: (n + 1,) for n in INDEX_COUNTS}}


@pytest.mark.parametrize("indexes", INDEX_COUNTS)
def test_both_variants_insert_the_same_orders(clean: httpx.Client, indexes: int) -> None:
    states = {}
    for variant in VARIANTS:
        assert clean.post(pair.reset_path or "").status_code == 200
        response = clean.post(f"{pair.path(variant)}?indexes={indexes}&rows=25")
        assert (response.status_code, response.json()) == (200, {"inserted": 25}), variant
        states[variant] = _state(clean)
    assert states["indexed"] == states["lean"]
    assert states["lean"]["rows"] == 25


def test_each_request_inserts_new_keys(clean: httpx.Client, servers: services.Endpoints) -> None:
    for _ in range(3):
        assert clean.post("/write_indexes/indexed?indexes=8&rows=10").status_code == 200
    with psycopg.connect(servers.pg_dsn) as conn:
        row = conn.execute(
            f"SELECT count(*), count(DISTINCT sku), count(DISTINCT email), min(id)"
            f" FROM {INDEXED[8]} WHERE id >= %s",
            (FIRST_NEW_ID,),
        ).fetchone()
    # Equal keys would be deduplicated in the B-trees and flatter the indexed table.
    assert row == (30, 30, 30, FIRST_NEW_ID)


def test_the_reset_removes_exactly_the_inserted_rows(
    clean: httpx.Client, servers: services.Endpoints
) -> None:
    assert _state(clean) == {"rows": 0, "checksum": None}
    assert clean.post("/write_indexes/indexed?indexes=2&rows=7").status_code == 200
    assert clean.post("/write_indexes/lean?indexes=2&rows=5").status_code == 200
    assert _state(clean)["rows"] == 12
    response = clean.post(pair.reset_path or "")
    assert response.json() == {"deleted": 12}
    assert _state(clean) == {"rows": 0, "checksum": None}
    with psycopg.connect(servers.pg_dsn) as conn:
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (SEEDED,)
    # The identities restarted: the next insert takes the same ids as the first did.
    assert clean.post("/write_indexes/lean?indexes=2&rows=1").status_code == 200
    with psycopg.connect(servers.pg_dsn) as conn:
        assert conn.execute(f"SELECT max(id) FROM {LEAN}").fetchone() == (FIRST_NEW_ID,)


def test_wal_grows_with_the_indexes(clean: httpx.Client) -> None:
    wal = {}
    for indexes in INDEX_COUNTS:
        response, counters = _post_counting(clean, f"/write_indexes/indexed?indexes={indexes}")
        assert response.status_code == 200
        assert counters["queries"] == 1
        wal[indexes] = counters["wal_bytes"]
    response, counters = _post_counting(clean, "/write_indexes/lean?indexes=8")
    assert counters["queries"] == 1
    lean = counters["wal_bytes"]
    # 500 rows: the heap's records and the primary key's for lean, one more B-tree's per index.
    assert lean > 0
    assert lean < wal[1] < wal[2] < wal[4] < wal[8], (lean, wal)
    assert wal[8] > 2.5 * lean, (lean, wal)


def test_a_count_without_a_table_is_a_404_without_a_write(clean: httpx.Client) -> None:
    for variant in VARIANTS:
        response, counters = _post_counting(clean, f"{pair.path(variant)}?indexes=3")
        assert response.status_code == 404, variant
        assert "no table with 3 secondary indexes" in response.json()["detail"]
        assert counters["queries"] == 0, variant
    assert _state(clean)["rows"] == 0


@pytest.mark.parametrize(
    "query",
    ["", "indexes=0", "indexes=9", "indexes=8&rows=0", f"indexes=8&rows={MAX_ROWS + 1}"],
)
def test_out_of_bounds_is_422_without_a_statement(clean: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        response, counters = _post_counting(clean, f"{pair.path(variant)}?{query}")
        assert response.status_code == 422, (variant, query)
        assert counters["queries"] == 0, (variant, query)
