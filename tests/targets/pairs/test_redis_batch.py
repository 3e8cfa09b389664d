"""redis_batch: the three variants return the stored items, byte for byte; the loop pays a
round trip per key, MGET and the pipeline one (checked against the server's own count of the
reads it made from client sockets, not only the handler's counter)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import redis

from pairbench.harness import metricsclient, services
from pairbench.targets.pairs.redis_batch import ITEMS, KEY_PREFIX, MAX_K, item_keys, pair
from pairbench.targets.registry import document

COUNTERS = document()["counters"]
VARIANTS = ["sequential", "mget", "pipeline"]
K = 50


@pytest.fixture(scope="module")
def redis_client(servers: services.Endpoints) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(servers.redis_url)
    yield client
    client.close()


def _counting(client: httpx.Client, path: str) -> tuple[httpx.Response, dict[str, float]]:
    before = client.get("/metrics").text
    response = client.get(path)
    return response, metricsclient.delta(before, client.get("/metrics").text, COUNTERS)


def test_round_trips_are_the_headline() -> None:
    assert list(pair.variants) == VARIANTS
    assert pair.counters[0] == "redis_round_trips"
    assert ITEMS >= MAX_K  # every K the endpoint accepts reads seeded items


@pytest.mark.parametrize("k", [1, 7, MAX_K])
def test_every_variant_returns_the_stored_items_in_key_order(
    target: httpx.Client, redis_client: redis.Redis, k: int
) -> None:
    responses = [target.get(f"/redis_batch/{v}?k={k}") for v in VARIANTS]
    assert [r.status_code for r in responses] == [200] * len(VARIANTS)
    assert len({r.content for r in responses}) == 1
    stored = redis_client.mget(item_keys(k))
    assert responses[0].json() == [json.loads(v) for v in stored]  # type: ignore[union-attr]
    assert [i["id"] for i in responses[0].json()] == list(range(1, k + 1))


@pytest.mark.parametrize(
    ("variant", "round_trips", "commands"),
    [("sequential", K, K), ("mget", 1, 1), ("pipeline", 1, K)],
)
def test_round_trips_and_commands_per_request(
    target: httpx.Client, variant: str, round_trips: int, commands: int
) -> None:
    response, delta = _counting(target, f"/redis_batch/{variant}?k={K}")
    assert response.status_code == 200
    assert delta["redis_round_trips"] == round_trips
    assert delta["redis_commands"] == commands  # a pipeline saves round trips, not commands


@pytest.mark.parametrize(("variant", "per_key"), [("sequential", True), ("mget", False)])
def test_the_server_reads_once_per_key_only_in_the_loop(
    target: httpx.Client, redis_client: redis.Redis, variant: str, per_key: bool
) -> None:
    """INFO stats' total_reads_processed counts the server's reads from client sockets: K
    awaited GETs arrive as K separate reads, an MGET as one (a pipeline of K small GETs fits in
    one write too, but the kernel may split it, so it is not asserted here)."""
    before = int(redis_client.info("stats")["total_reads_processed"])
    assert target.get(f"/redis_batch/{variant}?k={K}").status_code == 200
    reads = int(redis_client.info("stats")["total_reads_processed"]) - before
    # The second INFO is one read of its own; nothing else talks to Redis in between.
    if per_key:
        assert reads >= K
    else:
        assert reads <= 3


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_missing_item_is_a_404_not_a_500(
    target: httpx.Client, redis_client: redis.Redis, variant: str
) -> None:
    key = f"{KEY_PREFIX}3"
    value = redis_client.get(key)
    assert value is not None
    redis_client.delete(key)
    try:
        response = target.get(f"/redis_batch/{variant}?k=5")
    finally:
        redis_client.set(key, value)
    assert response.status_code == 404
    assert response.json() == {"detail": "item 3 is not in Redis"}


@pytest.mark.parametrize("k", [0, MAX_K + 1, -1])
def test_k_is_bounded(target: httpx.Client, k: int) -> None:
    assert target.get(f"/redis_batch/mget?k={k}").status_code == 422
