"""count_star: the exact count, the capped count and LIMIT n+1 serve the same pages; only the exact
count visits every matching row."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from pairbench.harness import services
from pairbench.targets.pairs.count_star import (
    COUNT_CAP,
    COUNT_SQL,
    MAX_LIMIT,
    MAX_PAGE,
    MAX_TAG,
    TAG_SIZES,
    pair,
)

from .counting import get_counting

VARIANTS = list(pair.variants)
TEST_MAX_MATCHING = 10_000  # the test profile's largest tag


def _pages(target: httpx.Client, query: str) -> dict[str, httpx.Response]:
    return {v: target.get(f"{pair.path(v)}?{query}") for v in VARIANTS}


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role) for v in pair.variants.values()] == [
        ("exact", "bad"),
        ("capped", "middle"),
        ("limit_plus_one", "good"),
    ]


def test_each_tag_has_exactly_as_many_items_as_its_number(servers: services.Endpoints) -> None:
    with psycopg.connect(servers.pg_dsn) as conn:
        counts = dict(conn.execute("SELECT tag, count(*) FROM count_items GROUP BY tag").fetchall())
    assert counts == {t: t for t in TAG_SIZES if t <= TEST_MAX_MATCHING}


# (tag, page, limit, items on the page, has_next): has_next at and around the boundaries.
PAGES = [
    (10, 1, 10, 10, False),  # the page ends exactly at the last row
    (10, 1, 9, 9, True),  # one row left over
    (100, 4, 20, 20, True),
    (100, 5, 20, 20, False),
    (100, 6, 20, 0, False),  # past the end
    (100, 2, 60, 40, False),  # a partial last page
    (1_000, MAX_PAGE, MAX_LIMIT, MAX_LIMIT, False),  # the deepest page the bounds allow
    (10_000, 1, 20, 20, True),
    (10_000, MAX_PAGE, MAX_LIMIT, MAX_LIMIT, True),  # beyond the cap: the capped count says 1,001
    (77, 1, 20, 0, False),  # a tag with no items
]


@pytest.mark.parametrize("tag,page,limit,items,has_next", PAGES)
def test_same_page_from_every_variant(
    target: httpx.Client, tag: int, page: int, limit: int, items: int, has_next: bool
) -> None:
    replies = _pages(target, f"tag={tag}&page={page}&limit={limit}")
    assert {v: r.status_code for v, r in replies.items()} == dict.fromkeys(VARIANTS, 200)
    bodies = [r.json() for r in replies.values()]
    assert all(b == bodies[0] for b in bodies)
    assert len(bodies[0]["items"]) == items
    assert bodies[0]["has_next"] is has_next


def test_pages_follow_each_other_newest_first(target: httpx.Client) -> None:
    pages = [target.get(f"/count_star/limit_plus_one?tag=100&page={p}").json() for p in range(1, 6)]
    items = [i for p in pages for i in p["items"]]
    keys = [(i["created_at"], i["id"]) for i in items]
    assert len(items) == 100 and len({i["id"] for i in items}) == 100  # no row twice, none lost
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize("tag", [10, 1_000, 10_000])
def test_statements_and_rows_counted_per_request(target: httpx.Client, tag: int) -> None:
    counted = {}
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?tag={tag}")
        assert response.status_code == 200, variant
        assert counters["queries"] == (1 if variant == "limit_plus_one" else 2), variant
        counted[variant] = counters["rows_counted"]
    # The exact count goes through every matching row, the capped one stops at COUNT_CAP + 1.
    assert counted == {"exact": tag, "capped": min(tag, COUNT_CAP + 1), "limit_plus_one": 0}


def test_the_exact_count_reads_buffers_in_proportion_to_the_matching_rows(
    target: httpx.Client,
) -> None:
    target.get("/count_star/exact?tag=10")  # warm: a first plan costs catalogue reads
    buffers = {}
    for variant in ("exact", "limit_plus_one"):
        for tag in (100, 10_000):
            _, counters = get_counting(target, f"{pair.path(variant)}?tag={tag}")
            buffers[variant, tag] = counters["db_buffers"]
    # LIMIT n+1 reads the same handful of pages whatever the tag matches; the exact count's
    # extra pages grow with the rows it counts.
    assert buffers["limit_plus_one", 10_000] <= 2 * buffers["limit_plus_one", 100], buffers
    extra_small = buffers["exact", 100] - buffers["limit_plus_one", 100]
    extra_large = buffers["exact", 10_000] - buffers["limit_plus_one", 10_000]
    assert extra_large > 10 * max(extra_small, 1), buffers


def test_the_count_is_an_index_only_scan_of_a_vacuumed_table(
    target: httpx.Client, servers: services.Endpoints
) -> None:
    # The target's start vacuumed the table (the pair's lifespan): the count reads the index
    # alone, no heap page, so its plan is the same before and after autovacuum comes by.
    assert target.get("/healthz").status_code == 200
    with psycopg.connect(servers.pg_dsn) as conn:
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                f"EXPLAIN (ANALYZE, COSTS OFF) {COUNT_SQL.replace('$1', '1000')}"
            ).fetchall()
        )
    assert "Index Only Scan using count_items_tag_created_idx" in plan, plan
    assert "Heap Fetches: 0" in plan, plan


@pytest.mark.parametrize(
    "query",
    [
        "",
        "tag=0",
        f"tag={MAX_TAG + 1}",
        "tag=abc",
        "tag=10&page=0",
        f"tag=10&page={MAX_PAGE + 1}",
        "tag=10&limit=0",
        f"tag=10&limit={MAX_LIMIT + 1}",
    ],
)
def test_out_of_bounds_is_422_without_a_statement(target: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?{query}")
        assert response.status_code == 422, (variant, query)
        assert counters["queries"] == 0, (variant, query)


def test_the_cap_reaches_past_the_deepest_page() -> None:
    # The capped count decides has_next correctly only if it counts past the last row a page
    # can show: the bounds keep every page within the cap.
    assert MAX_PAGE * MAX_LIMIT <= COUNT_CAP
