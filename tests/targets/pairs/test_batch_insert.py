"""batch_insert: every variant writes the same lines exactly once; only the row-by-row variant
commits once per row, and a reset leaves no trial another's rows."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from pairbench.harness import metricsclient, services
from pairbench.targets.pairs.batch_insert import MAX_ROWS, WRITTEN_ORDER, lines, pair
from pairbench.targets.registry import document

COUNTERS = document()["counters"]
VARIANTS = list(pair.variants)
TEST_SEEDED_LINES = 1_000  # the test profile's seeded lines


def _reset(target: httpx.Client) -> None:
    assert pair.reset_path is not None
    assert target.post(pair.reset_path).status_code == 200


def _state(target: httpx.Client) -> dict[str, object]:
    assert pair.state_path is not None
    state: dict[str, object] = target.get(pair.state_path).json()
    return state


def _write_counting(
    target: httpx.Client, variant: str, n: int
) -> tuple[httpx.Response, dict[str, float]]:
    before = target.get("/metrics").text
    response = target.post(f"{pair.path(variant)}?n={n}")
    return response, metricsclient.delta(before, target.get("/metrics").text, COUNTERS)


def _written(dsn: str) -> list[tuple[int, int, str, int, int]]:
    with psycopg.connect(dsn) as conn:
        return [
            tuple(r)  # type: ignore[misc]
            for r in conn.execute(
                "SELECT order_id, line, sku, quantity, price_cents FROM batch_lines"
                " WHERE NOT seeded ORDER BY line"
            ).fetchall()
        ]


def _transactions(dsn: str) -> int:
    """Distinct inserting transactions of the written lines: the commits the server saw."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM batch_lines WHERE NOT seeded"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role, v.method) for v in pair.variants.values()] == [
        ("autocommit", "bad", "POST"),
        ("one_transaction", "middle", "POST"),
        ("executemany", "good", "POST"),
        ("unnest", "good", "POST"),
        ("copy", "good", "POST"),
    ]


@pytest.mark.parametrize("n", [1, 7, 250])
def test_every_variant_writes_the_same_lines_exactly_once(
    target: httpx.Client, servers: services.Endpoints, n: int
) -> None:
    _reset(target)
    seeded = _state(target)
    assert seeded == {"written": 0, "checksum": None, "seeded": TEST_SEEDED_LINES}
    states = {}
    for variant in VARIANTS:
        _reset(target)
        response = target.post(f"{pair.path(variant)}?n={n}")
        assert response.status_code == 200, (variant, response.text[:200])
        assert response.json() == {"inserted": n}
        # Each line once, with the content the request stands for: no row lost or doubled.
        assert _written(servers.pg_dsn) == lines(n), variant
        states[variant] = _state(target)
    assert all(s == states["autocommit"] for s in states.values()), states
    assert states["autocommit"]["written"] == n
    _reset(target)
    assert _state(target) == seeded


@pytest.mark.parametrize("n", [5, 40])
def test_statements_and_commits_per_request(
    target: httpx.Client, servers: services.Endpoints, n: int
) -> None:
    # Statements as the driver sent them, commits as the handler counts them and, from the
    # server's side, the distinct transactions that inserted the rows.
    want = {
        "autocommit": (n, n),
        "one_transaction": (n + 2, 1),
        "executemany": (1, 1),
        "unnest": (1, 1),
        "copy": (0, 1),
    }
    for variant in VARIANTS:
        _reset(target)
        target.post(f"{pair.path(variant)}?n=1")  # a first call prepares types and statements
        _reset(target)
        response, counters = _write_counting(target, variant, n)
        assert response.status_code == 200, variant
        assert (counters["queries"], counters["commits"]) == want[variant], (variant, counters)
        assert _transactions(servers.pg_dsn) == want[variant][1], variant
    _reset(target)


def test_a_reset_leaves_no_trial_the_rows_of_another(
    target: httpx.Client, servers: services.Endpoints
) -> None:
    _reset(target)
    for _ in range(3):
        assert target.post(f"{pair.path('copy')}?n=100").status_code == 200
    assert _state(target)["written"] == 300  # three requests, three times the lines
    _reset(target)
    assert _written(servers.pg_dsn) == []
    assert _state(target)["seeded"] == TEST_SEEDED_LINES
    # The next write starts from the seeded table alone.
    assert target.post(f"{pair.path('unnest')}?n=3").status_code == 200
    assert _written(servers.pg_dsn) == lines(3)
    _reset(target)


def test_written_lines_belong_to_their_own_order() -> None:
    assert {line[0] for line in lines(50)} == {WRITTEN_ORDER}
    assert [line[1] for line in lines(50)] == list(range(1, 51))


@pytest.mark.parametrize("query", ["", "n=0", "n=-1", f"n={MAX_ROWS + 1}", "n=abc"])
def test_out_of_bounds_is_422_and_writes_nothing(
    target: httpx.Client, servers: services.Endpoints, query: str
) -> None:
    _reset(target)
    for variant in VARIANTS:
        before = target.get("/metrics").text
        response = target.post(f"{pair.path(variant)}?{query}")
        counters = metricsclient.delta(before, target.get("/metrics").text, COUNTERS)
        assert response.status_code == 422, (variant, query)
        assert counters["queries"] == 0 and counters["commits"] == 0, (variant, query)
    assert _written(servers.pg_dsn) == []
