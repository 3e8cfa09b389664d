"""rate_limit: both variants return the same report; past the limit the limited variant answers
429 with Retry-After before any SQL, per client (another client, the bystander, is never
limited); the limiter's keys live in the pair's own Redis database, which the reset empties."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import psycopg
import pytest
import redis

from pairbench.harness import catalogue, scenario, services, verify
from pairbench.scenarios import SCENARIO_DIR
from pairbench.targets.pairs.rate_limit import (
    CLIENT_HEADER,
    KEY_PREFIX,
    LIMIT_PER_WINDOW,
    LIMITED_STATUS,
    LIMITS_DATABASE_OFFSET,
    MAX_CLIENT_CHARS,
    WINDOW_SECONDS,
    pair,
    retry_after,
)

from .counting import get_counting

TEST_ORDERS = 5_000  # the test profile's
MONTHS = 24
BURST = 3 * LIMIT_PER_WINDOW  # sent back to back: well past the limit within one window
ABUSER = {CLIENT_HEADER: "abuser"}


@pytest.fixture
def fresh(target: httpx.Client) -> Iterator[httpx.Client]:
    """The target with every client's allowance whole, before and after the test."""
    assert target.post(pair.reset_path or "").status_code == 200
    yield target
    assert target.post(pair.reset_path or "").status_code == 200


@pytest.fixture(scope="module")
def limits_redis(servers: services.Endpoints) -> Iterator[redis.Redis]:
    """The pair's own logical database, as the app derives it from its own."""
    app = redis.Redis.from_url(servers.redis_url)
    kwargs = app.connection_pool.connection_kwargs
    client = redis.Redis(
        host=kwargs["host"],
        port=kwargs["port"],
        db=int(kwargs.get("db", 0)) + LIMITS_DATABASE_OFFSET,
    )
    yield client
    client.close()
    app.close()


def _burst(target: httpx.Client, variant: str, headers: dict[str, str]) -> list[httpx.Response]:
    return [target.get(pair.path(variant), headers=headers) for _ in range(BURST)]


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role) for v in pair.variants.values()] == [
        ("unlimited", "bad"),
        ("limited", "good"),
    ]
    assert pair.counters[:2] == ["reports", "limited"]


def test_the_same_report_from_both_variants(
    fresh: httpx.Client, servers: services.Endpoints
) -> None:
    bodies = {v: fresh.get(pair.path(v), headers=ABUSER) for v in pair.variants}
    assert all(r.status_code == 200 for r in bodies.values())
    assert bodies["unlimited"].json() == bodies["limited"].json()
    months = bodies["unlimited"].json()["months"]
    assert len(months) == MONTHS and sum(m["order_count"] for m in months) == TEST_ORDERS
    # The report is what PostgreSQL says, not a cached or invented figure.
    with psycopg.connect(servers.pg_dsn) as conn:
        total = conn.execute("SELECT sum(total_cents) FROM rate_limit_orders").fetchone()
    assert total is not None and sum(m["revenue_cents"] for m in months) == total[0]


def test_past_the_limit_a_429_with_retry_after_and_no_query(fresh: httpx.Client) -> None:
    replies = _burst(fresh, "limited", ABUSER)
    statuses = [r.status_code for r in replies]
    # Right after the reset the first LIMIT_PER_WINDOW pass; the burst's rest meets the limit
    # (the sliding window may let a few more in as the first window's weight decays).
    assert statuses[:LIMIT_PER_WINDOW] == [200] * LIMIT_PER_WINDOW
    assert LIMITED_STATUS in statuses and statuses.count(200) < 2 * LIMIT_PER_WINDOW
    limited = next(r for r in replies if r.status_code == LIMITED_STATUS)
    assert 1 <= int(limited.headers["retry-after"]) <= WINDOW_SECONDS
    assert str(LIMIT_PER_WINDOW) in limited.json()["detail"]
    # More requests from the abuser, each counted alone (one may find a slot the window freed
    # meanwhile): a 429 runs no report and no SQL at all.
    for _ in range(BURST):
        reply, counters = get_counting(fresh, pair.path("limited"), ABUSER)
        if reply.status_code == LIMITED_STATUS:
            break
    assert reply.status_code == LIMITED_STATUS
    assert counters["limited"] == 1 and counters["reports"] == 0 and counters["queries"] == 0


def test_the_limit_is_per_client(fresh: httpx.Client) -> None:
    assert LIMITED_STATUS in [r.status_code for r in _burst(fresh, "limited", ABUSER)]
    # The abuser is limited; another client, and one without the header (its address), are not.
    for headers in ({CLIENT_HEADER: "bystander"}, {}):
        reply, counters = get_counting(fresh, pair.path("limited"), headers)
        assert reply.status_code == 200, headers
        assert counters["reports"] == 1 and counters["limited"] == 0


def test_the_unlimited_variant_never_refuses(fresh: httpx.Client) -> None:
    assert {r.status_code for r in _burst(fresh, "unlimited", ABUSER)} == {200}


def test_the_reset_gives_the_allowance_back(
    fresh: httpx.Client, limits_redis: redis.Redis, servers: services.Endpoints
) -> None:
    assert LIMITED_STATUS in [r.status_code for r in _burst(fresh, "limited", ABUSER)]
    # The limiter's keys are in the pair's own database, under its prefix, and nowhere else.
    keys = [k.decode() for k in limits_redis.keys("*")]
    assert keys and all(k.startswith(KEY_PREFIX) for k in keys)
    app = redis.Redis.from_url(servers.redis_url)
    assert not list(app.scan_iter(match=f"{KEY_PREFIX}*", count=1000))
    app.close()
    assert fresh.post(pair.reset_path or "").json() == {"cleared": len(keys)}
    assert limits_redis.dbsize() == 0
    assert fresh.get(pair.path("limited"), headers=ABUSER).status_code == 200


@pytest.mark.parametrize(("reset_in", "seconds"), [(0.3, 1), (1.0, 1), (1.2, 2), (-5.0, 1)])
def test_retry_after_is_whole_seconds_at_least_one(reset_in: float, seconds: int) -> None:
    assert retry_after(1000.0 + reset_in, now=1000.0) == seconds


@pytest.mark.parametrize("client", ["x" * (MAX_CLIENT_CHARS + 1), "a b", "a/b", "a;b", ""])
def test_a_bad_client_name_is_422_without_a_query(fresh: httpx.Client, client: str) -> None:
    reply, counters = get_counting(fresh, pair.path("limited"), {CLIENT_HEADER: client})
    assert reply.status_code == 422 and counters["reports"] == 0


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("number=0", 422),
        ("number=100000000", 422),
        ("number=x", 422),
        ("number=9999999", 404),
        ("number=1", 200),
    ],
)
def test_the_bystanders_order(target: httpx.Client, query: str, status: int) -> None:
    reply = target.get(f"/rate_limit/order?{query}")
    assert reply.status_code == status, reply.text
    if status == 200:
        assert reply.json()["id"] == 1 and reply.json()["placed_at"].startswith("20")


def test_the_scenario_verifies_and_a_lone_request_gets_its_200(fresh: httpx.Client) -> None:
    spec = scenario.load_scenario(SCENARIO_DIR / "rate_limit.toml")
    pair_info = catalogue.resolve(spec, catalogue.fetch(str(fresh.base_url)))
    # Even right after the abuser met the limit: verification resets before each request.
    assert LIMITED_STATUS in [r.status_code for r in _burst(fresh, "limited", ABUSER)]
    outcome = verify.verify_pair(fresh, pair_info, [200])
    assert outcome.passed, outcome.first_failure
    statuses = [c.detail for c in outcome.checks if c.name == "status"]
    assert statuses and all(d.endswith("-> 200") for d in statuses)


def test_concurrent_clients_each_get_their_allowance(fresh: httpx.Client) -> None:
    """Two clients bursting at once: each is limited on its own count, not on the sum."""

    async def burst(client: str) -> list[int]:
        async with httpx.AsyncClient(base_url=str(fresh.base_url), timeout=30) as http:
            headers = {CLIENT_HEADER: client}
            replies = await asyncio.gather(
                *(http.get(pair.path("limited"), headers=headers) for _ in range(LIMIT_PER_WINDOW))
            )
            return [r.status_code for r in replies]

    async def both() -> list[list[int]]:
        return list(await asyncio.gather(burst("one"), burst("two")))

    # 2 x LIMIT_PER_WINDOW requests inside one window: a shared count would refuse half.
    for statuses in asyncio.run(both()):
        assert statuses == [200] * LIMIT_PER_WINDOW
