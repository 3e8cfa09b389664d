"""redis_keys: every variant deletes the same pages of one product and nothing else; KEYS's
time in Redis grows with the keyspace while the tag set's does not; the seed stores the knob's
keys in the pair's own logical database, adding only what is missing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from pairbench.harness import metricsclient, services
from pairbench.targets.pairs.redis_keys import (
    KEY_PREFIX,
    KEYS_DATABASE_OFFSET,
    KEYS_PER_PRODUCT,
    MAX_KEYS,
    PAGES_PER_PRODUCT,
    page_key,
    pair,
    tag_key,
)
from pairbench.targets.registry import document

COUNTERS = document()["counters"]
VARIANTS = ["keys_pattern", "scan", "tag_set"]
SMALL, LARGE = 2_000, 50_000
HOUSEKEEPING = 2  # the seed's size marker and the bystander's value


@pytest.fixture(scope="module")
def app_redis(servers: services.Endpoints) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(servers.redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def pair_redis(app_redis: redis.Redis) -> Iterator[redis.Redis]:
    """The pair's own database, as the app derives it from its own."""
    app = app_redis.connection_pool.connection_kwargs
    db = int(app.get("db", 0)) + KEYS_DATABASE_OFFSET
    client = redis.Redis(host=app["host"], port=app["port"], db=db)
    yield client
    client.close()


def _seed(target: httpx.Client, keys: int) -> dict[str, float]:
    response = target.get(f"/redis_keys/seed?keys={keys}", timeout=60)
    assert response.status_code == 200, response.text
    seeded: dict[str, float] = response.json()
    return seeded


def _invalidate(target: httpx.Client, variant: str, product: int) -> httpx.Response:
    assert target.post(f"/redis_keys/fill?product={product}").status_code == 200
    return target.post(f"/redis_keys/{variant}?product={product}")


def test_redis_time_is_the_headline() -> None:
    assert list(pair.variants) == VARIANTS
    assert [v.role for v in pair.variants.values()] == ["bad", "middle", "good"]
    assert pair.counters[0] == "redis_seconds"


def test_the_seed_stores_the_knob_in_the_pairs_own_database(
    target: httpx.Client, app_redis: redis.Redis, pair_redis: redis.Redis
) -> None:
    pair_redis.flushdb()
    first = _seed(target, SMALL)
    assert (first["keys"], first["added"]) == (SMALL, SMALL // KEYS_PER_PRODUCT)
    assert pair_redis.dbsize() == SMALL + HOUSEKEEPING
    grown = _seed(target, 2 * SMALL)  # only the new products are added
    assert grown["added"] == SMALL // KEYS_PER_PRODUCT
    assert pair_redis.dbsize() == 2 * SMALL + HOUSEKEEPING
    assert _seed(target, SMALL)["keys"] == SMALL  # fewer: the database starts again
    assert pair_redis.dbsize() == SMALL + HOUSEKEEPING
    assert not list(app_redis.scan_iter(match=f"{KEY_PREFIX}*", count=1000))


@pytest.mark.parametrize("product", [1, 17])
def test_every_variant_deletes_the_products_pages_and_nothing_else(
    target: httpx.Client, pair_redis: redis.Redis, product: int
) -> None:
    _seed(target, SMALL)  # products 1..200: 17's pattern must not take 170..179
    expected = sorted(page_key(product, p) for p in range(PAGES_PER_PRODUCT))
    bodies = []
    for variant in VARIANTS:
        response = _invalidate(target, variant, product)
        assert response.status_code == 200, response.text
        bodies.append(response.json())
        assert not pair_redis.exists(*expected)
        assert pair_redis.exists(page_key(product * 10, 0))  # product:170 is untouched
    assert bodies == [{"product": product, "deleted": expected}] * len(VARIANTS)


@pytest.mark.parametrize("variant", ["keys_pattern", "tag_set"])
def test_commands_per_sequence(target: httpx.Client, variant: str) -> None:
    _seed(target, SMALL)
    before = target.get("/metrics").text
    assert _invalidate(target, variant, 3).status_code == 200
    delta = metricsclient.delta(before, target.get("/metrics").text, COUNTERS)
    assert delta["redis_commands"] == 4  # fill: MSET + SADD; then KEYS or SMEMBERS, and DEL


def _usec_per_call(client: redis.Redis, command: str, calls: int, run: object) -> float:
    """Redis's own time per call of `command` (INFO commandstats) over `calls` runs of `run`."""
    name = f"cmdstat_{command}"
    before = client.info("commandstats").get(name, {"usec": 0, "calls": 0})
    for _ in range(calls):
        run()  # type: ignore[operator]
    after = client.info("commandstats")[name]
    assert after["calls"] - before["calls"] == calls
    return float(after["usec"] - before["usec"]) / calls


def test_keys_walks_the_keyspace_and_the_tag_set_does_not(
    target: httpx.Client, pair_redis: redis.Redis
) -> None:
    """KEYS's time per call grows with the keys stored; SMEMBERS's stays that of nine keys."""
    times = {}
    for size in (SMALL, LARGE):
        _seed(target, size)
        times[size] = {
            "keys": _usec_per_call(
                pair_redis, "keys", 5, lambda: _invalidate(target, "keys_pattern", 5)
            ),
            "smembers": _usec_per_call(
                pair_redis, "smembers", 5, lambda: _invalidate(target, "tag_set", 5)
            ),
        }
    assert times[LARGE]["keys"] > 5 * times[SMALL]["keys"], times
    assert times[LARGE]["keys"] > 20 * times[LARGE]["smembers"], times


def test_redis_seconds_counts_the_walk(target: httpx.Client) -> None:
    _seed(target, LARGE)
    spent = {}
    for variant in ("keys_pattern", "tag_set"):
        before = target.get("/metrics").text
        assert _invalidate(target, variant, 7).status_code == 200
        spent[variant] = metricsclient.delta(before, target.get("/metrics").text, COUNTERS)[
            "redis_seconds"
        ]
    assert spent["keys_pattern"] > 10 * spent["tag_set"], spent


def test_the_bystander_reads_one_cached_value(target: httpx.Client) -> None:
    _seed(target, SMALL)
    response = target.get("/redis_keys/read")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "page": "home"}
    assert tag_key(1) != page_key(1, 0)


@pytest.mark.parametrize(
    "path", ["/redis_keys/seed?keys=9", f"/redis_keys/seed?keys={MAX_KEYS + 1}"]
)
def test_the_seed_size_is_bounded(target: httpx.Client, path: str) -> None:
    assert target.get(path).status_code == 422


@pytest.mark.parametrize("product", [0, -1, 10**9])
def test_the_product_is_bounded(target: httpx.Client, product: int) -> None:
    assert target.post(f"/redis_keys/tag_set?product={product}").status_code == 422
    assert target.post(f"/redis_keys/fill?product={product}").status_code == 422
