"""EXPLAIN in verification: a request sent with X-Pairbench-Explain: 1 has its statements'
access paths at /_pairbench/plans, and only such a request replaces them."""

from __future__ import annotations

from typing import Any

import httpx

from pairbench.harness import metricsclient

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


def test_pagination_reads_the_feed_through_its_index(target: httpx.Client) -> None:
    (offset,) = _plans(target, "/pagination/offset?offset=5000")
    assert offset["access"] == ["Index Scan on feed_items"]
    cursor = target.get("/pagination/cursor?offset=5000").json()["cursor"]
    (keyset,) = _plans(target, f"/pagination/keyset?after={cursor}")
    assert keyset["access"] == ["Index Scan on feed_items"]
    assert "(created_at, id) < ($1, $2)" in keyset["sql"]


def test_a_request_without_the_header_leaves_the_plans_alone(target: httpx.Client) -> None:
    before = _plans(target, "/n_plus_one/batched?n=2")
    assert target.get("/n_plus_one/lazy?n=5").status_code == 200
    assert target.get("/_pairbench/plans").json() == before


def test_explaining_does_not_count_as_the_requests_statements(target: httpx.Client) -> None:
    before = target.get("/metrics").text
    _plans(target, "/n_plus_one/lazy?n=4")
    counters = metricsclient.delta(before, target.get("/metrics").text)
    assert counters["queries"] == 1 + 4
    assert counters["db_connections_opened"] == 0
