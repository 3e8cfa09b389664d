"""N+1: the four variants return the same bytes, with the query counts that define them."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from pairbench.harness import metricsclient, services
from pairbench.targets.pairs.n_plus_one import MAX_AUTHORS, pair
from pairbench.targets.registry import document

from .counting import get_counting

# The catalogue the harness reads counters with (docs/architecture.md, "What the targets describe").
COUNTERS = document()["counters"]

VARIANTS = ["lazy", "join", "batched", "dataloader"]
EXPECTED_QUERIES = {
    "lazy": lambda n: 1 + n,
    "join": lambda n: 1,
    "batched": lambda n: 2,
    "dataloader": lambda n: 2,
}


@pytest.mark.parametrize("n", [1, 7, 50, 120])
def test_variants_are_byte_identical(target: httpx.Client, n: int) -> None:
    bodies = {v: target.get(f"/n_plus_one/{v}?n={n}") for v in VARIANTS}
    assert all(r.status_code == 200 for r in bodies.values())
    reference = bodies["lazy"].content
    assert all(r.content == reference for r in bodies.values())
    authors = bodies["lazy"].json()
    assert [a["id"] for a in authors] == list(range(1, n + 1))
    for author in authors:
        assert [b["id"] for b in author["books"]] == sorted(b["id"] for b in author["books"])


def test_some_authors_have_no_books_and_still_appear(target: httpx.Client) -> None:
    authors = target.get("/n_plus_one/join?n=120").json()
    assert any(a["books"] == [] for a in authors)  # the LEFT JOIN's NULL row is not a book


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n", [1, 10, 40])
def test_query_counts(target: httpx.Client, variant: str, n: int) -> None:
    response, counters = get_counting(target, f"/n_plus_one/{variant}?n={n}")
    assert response.status_code == 200
    assert counters["queries"] == EXPECTED_QUERIES[variant](n)
    assert counters["db_connections_opened"] == 0  # the pool is warm: no connect per request


# Huge and negative values are the contract test's (tests/test_pair_contract.py).
@pytest.mark.parametrize("query", ["n=0", f"n={MAX_AUTHORS + 1}", "n=abc", ""])
def test_bad_n_is_rejected_without_touching_the_database(target: httpx.Client, query: str) -> None:
    response, counters = get_counting(target, f"/n_plus_one/lazy?{query}")
    assert response.status_code == 422
    assert counters["queries"] == 0


def test_the_lesson_is_told_by_the_statement_count() -> None:
    assert pair.counters[0] == "queries"
    assert list(pair.variants) == VARIANTS


def test_books_reference_their_authors_and_are_indexed(servers: services.Endpoints) -> None:
    with psycopg.connect(servers.pg_dsn) as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM books b LEFT JOIN authors a ON a.id = b.author_id"
            " WHERE a.id IS NULL"
        ).fetchone()
        indexes = {
            r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'books'")
        }
    assert orphans == (0,)
    assert "books_author_id_idx" in indexes


EXPLAIN = {"X-Pairbench-Explain": "1"}


def _plans(target: httpx.Client, path: str) -> list[dict[str, Any]]:
    response = target.get(path, headers=EXPLAIN)
    assert response.status_code == 200
    plans: list[dict[str, Any]] = target.get("/_pairbench/plans").json()
    return plans


def test_lazy_loading_explains_one_statement_per_author(target: httpx.Client) -> None:
    plans = _plans(target, "/n_plus_one/lazy?n=3")
    assert len(plans) == 1 + 3
    assert plans[0]["access"] == ["Index Scan on authors"]
    for plan in plans[1:]:
        (access,) = plan["access"]
        assert access in ("Index Scan on books", "Bitmap Heap Scan on books")
        assert "FROM books WHERE author_id = $1" in plan["sql"]


def test_join_explains_both_tables_in_one_statement(target: httpx.Client) -> None:
    (plan,) = _plans(target, "/n_plus_one/join?n=50")
    assert {a.rsplit(" on ", 1)[1] for a in plan["access"]} == {"authors", "books"}


def test_a_request_without_the_header_leaves_the_plans_alone(target: httpx.Client) -> None:
    before = _plans(target, "/n_plus_one/batched?n=2")
    assert target.get("/n_plus_one/lazy?n=5").status_code == 200
    assert target.get("/_pairbench/plans").json() == before


def test_explaining_does_not_count_as_the_requests_statements(target: httpx.Client) -> None:
    before = target.get("/metrics").text
    _plans(target, "/n_plus_one/lazy?n=4")
    counters = metricsclient.delta(before, target.get("/metrics").text, COUNTERS)
    assert counters["queries"] == 1 + 4
    assert counters["db_connections_opened"] == 0
