"""select_star: every variant lists the same ids and names; only SELECT * fetches the wide
column, reads its TOAST pages and drops it."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from pairbench.harness import services
from pairbench.targets.pairs.select_star import (
    COVERING_SQL,
    DEFAULT_LIMIT,
    FIELDS,
    MAX_FIELDS_CHARS,
    MAX_LIMIT,
    MAX_WIDTH,
    WIDTHS,
    pair,
)

from .counting import get_counting

VARIANTS = list(pair.variants)
ROWS_PER_WIDTH = 250  # the test profile's
TEST_MAX_WIDTH = 10_000


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role) for v in pair.variants.values()] == [
        ("star", "bad"),
        ("columns", "good"),
        ("fieldset", "good"),
        ("covering", "good"),
    ]


def test_the_twin_tables_hold_the_same_rows_of_exact_widths(servers: services.Endpoints) -> None:
    digest = (
        "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t.id)),"
        " bool_and(octet_length(details) = width) FROM {} AS t"
    )
    with psycopg.connect(servers.pg_dsn) as conn:
        plain = conn.execute(digest.format("star_items")).fetchone()
        twin = conn.execute(digest.format("star_items_covered")).fetchone()
        widths = dict(
            conn.execute("SELECT width, count(*) FROM star_items GROUP BY width").fetchall()
        )
    assert plain == twin
    assert plain is not None and plain[2] is True  # details is exactly `width` bytes
    assert widths == {w: ROWS_PER_WIDTH for w in WIDTHS if w <= TEST_MAX_WIDTH}


@pytest.mark.parametrize(
    "width,limit,rows",
    [
        (10, DEFAULT_LIMIT, DEFAULT_LIMIT),
        (1_000, 7, 7),
        (10_000, DEFAULT_LIMIT, DEFAULT_LIMIT),
        (10_000, MAX_LIMIT, ROWS_PER_WIDTH),  # the whole group
        (12_345, DEFAULT_LIMIT, 0),  # no item has that width
    ],
)
def test_same_list_from_every_variant(
    target: httpx.Client, width: int, limit: int, rows: int
) -> None:
    replies = {
        v: target.get(f"{pair.path(v)}?width={width}&limit={limit}").json() for v in VARIANTS
    }
    first = replies["star"]
    assert all(body == first for body in replies.values()), {v: len(b) for v, b in replies.items()}
    assert len(first) == rows
    assert all(set(item) == {"id", "name"} for item in first)
    ids = [item["id"] for item in first]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


@pytest.mark.parametrize("width", [10, 10_000])
def test_only_select_star_fetches_the_wide_column(target: httpx.Client, width: int) -> None:
    sent = {}
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?width={width}")
        assert response.status_code == 200, variant
        assert counters["queries"] == 1, variant
        unused = DEFAULT_LIMIT * width if variant == "star" else 0
        assert counters["unused_bytes"] == unused, variant
        sent[variant] = counters["response_bytes"]
        assert sent[variant] == len(response.content), variant
    # The client gets the same bytes from every variant: the waste is between server and app.
    assert len(set(sent.values())) == 1, sent


def test_select_star_reads_the_toast_pages_the_others_never_touch(target: httpx.Client) -> None:
    for variant in VARIANTS:  # warm: a first plan costs catalogue reads
        target.get(f"{pair.path(variant)}?width=10")
    buffers = {}
    for variant in VARIANTS:
        _, counters = get_counting(target, f"{pair.path(variant)}?width=10000")
        buffers[variant] = counters["db_buffers"]
    # 200 details of 10 KB live out of line (TOAST): SELECT * reads their chunks as well.
    assert buffers["star"] > 5 * buffers["columns"], buffers
    assert buffers["fieldset"] == buffers["columns"], buffers  # the same statement
    # The covering index holds the names: no heap page at all.
    assert buffers["covering"] < buffers["columns"], buffers


def test_the_covering_variant_scans_the_index_alone(
    target: httpx.Client, servers: services.Endpoints
) -> None:
    # The target's start vacuumed both tables (the pair's lifespan), so the visibility map
    # lets the index-only scan skip the heap entirely.
    assert target.get("/healthz").status_code == 200
    sql = COVERING_SQL.replace("$1", "10000").replace("$2", str(DEFAULT_LIMIT))
    with psycopg.connect(servers.pg_dsn) as conn:
        plan = "\n".join(
            r[0] for r in conn.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}").fetchall()
        )
    assert "Index Only Scan using star_items_covered_width_id_idx" in plan, plan
    assert "Heap Fetches: 0" in plan, plan


def test_the_plans_endpoint_shows_the_access_paths(target: httpx.Client) -> None:
    access = {}
    for variant in VARIANTS:
        response = target.get(
            f"{pair.path(variant)}?width=10000", headers={"X-Pairbench-Explain": "1"}
        )
        assert response.status_code == 200
        (plan,) = target.get("/_pairbench/plans").json()
        access[variant] = plan["access"]
    assert access["covering"] == ["Index Only Scan on star_items_covered"]
    assert all("star_items_covered" not in a for v in VARIANTS[:-1] for a in access[v])


@pytest.mark.parametrize(
    "fields,keys",
    [
        ("id,name", ["id", "name"]),
        ("name,id", ["id", "name"]),  # any order, one statement: the whitelist's order
        ("id, name ,id", ["id", "name"]),  # spaces and repeats are forgiven
        ("details", ["details"]),
        (",".join(FIELDS), list(FIELDS)),
    ],
)
def test_the_fieldset_returns_what_is_asked(
    target: httpx.Client, fields: str, keys: list[str]
) -> None:
    items = target.get(f"/select_star/fieldset?width=100&limit=5&fields={fields}").json()
    assert len(items) == 5
    assert all(list(item) == keys for item in items)
    if "details" in keys:
        assert all(len(item["details"]) == 100 for item in items)
    full = target.get(f"/select_star/fieldset?width=100&limit=5&fields={','.join(FIELDS)}").json()
    assert items == [{k: item[k] for k in keys} for item in full]


def test_the_fieldset_defaults_to_the_list_fields(target: httpx.Client) -> None:
    by_default = target.get("/select_star/fieldset?width=1000").json()
    assert by_default == target.get("/select_star/columns?width=1000").json()


@pytest.mark.parametrize(
    "fields,named",
    [("id,price", "'price'"), ("", "''"), ("id,,name", "''"), ("ID", "'ID'"), ("*", "'*'")],
)
def test_an_unknown_field_is_a_400_naming_it(target: httpx.Client, fields: str, named: str) -> None:
    response, counters = get_counting(target, f"/select_star/fieldset?width=100&fields={fields}")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert named in detail and "known: id, width, name, details" in detail, detail
    assert counters["queries"] == 0  # refused before a connection is acquired


@pytest.mark.parametrize(
    "query",
    [
        "",
        "width=0",
        f"width={MAX_WIDTH + 1}",
        "width=10&limit=0",
        f"width=10&limit={MAX_LIMIT + 1}",
    ],
)
def test_out_of_bounds_is_422_without_a_statement(target: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?{query}")
        assert response.status_code == 422, (variant, query)
        assert counters["queries"] == 0, (variant, query)


def test_a_long_fieldset_is_422(target: httpx.Client) -> None:
    fields = ",".join(["id"] * (MAX_FIELDS_CHARS // 3 + 1))
    assert target.get(f"/select_star/fieldset?width=10&fields={fields}").status_code == 422


def test_the_400_is_documented_on_the_fieldset_only(target: httpx.Client) -> None:
    paths = target.get("/openapi.json").json()["paths"]
    for variant in VARIANTS:
        responses = set(paths[pair.path(variant)]["get"]["responses"])
        assert responses == ({"200", "400", "422"} if variant == "fieldset" else {"200", "422"})
