"""local_cache: every variant serves the same report; a second read is a hit; the unbounded dict
keeps every distinct key while the LRU stops at its bound; the reset empties every cache and its
Redis database; the report's size and inputs are bounded."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from pairbench.harness import services
from pairbench.targets.pairs.local_cache import (
    BOUNDED_ENTRIES,
    CACHE_DATABASE_OFFSET,
    MAX_ITEM,
    REPORT_SECTIONS,
    cache_key,
    pair,
)

from .counting import get_counting

VARIANTS = ["unbounded_dict", "bounded_lru", "redis_shared"]


@pytest.fixture(scope="module")
def pair_redis(servers: services.Endpoints) -> Iterator[redis.Redis]:
    """The pair's own database, as the app derives it from its own."""
    app = redis.Redis.from_url(servers.redis_url)
    kwargs = app.connection_pool.connection_kwargs
    db = int(kwargs.get("db", 0)) + CACHE_DATABASE_OFFSET
    client = redis.Redis(host=kwargs["host"], port=kwargs["port"], db=db)
    app.close()
    yield client
    client.close()


def _reset(target: httpx.Client) -> None:
    assert pair.reset_path is not None
    assert target.post(pair.reset_path).status_code == 200


def _stats(target: httpx.Client) -> dict[str, int]:
    response = target.get("/local_cache/stats")
    assert response.status_code == 200
    stats: dict[str, int] = response.json()
    return stats


def test_peak_memory_is_the_headline() -> None:
    assert list(pair.variants) == VARIANTS
    assert [v.role for v in pair.variants.values()] == ["bad", "good", "good"]
    assert pair.counters[0] == "peak_rss"


def test_every_variant_serves_the_same_report_then_hits(
    target: httpx.Client, pair_redis: redis.Redis
) -> None:
    _reset(target)
    bodies = []
    for variant in VARIANTS:
        first, miss = get_counting(target, f"/local_cache/{variant}?item=7")
        assert first.status_code == 200, first.text
        assert (miss["local_cache_misses"], miss["local_cache_hits"], miss["queries"]) == (1, 0, 1)
        again, hit = get_counting(target, f"/local_cache/{variant}?item=7")
        assert again.content == first.content
        assert (hit["local_cache_misses"], hit["local_cache_hits"], hit["queries"]) == (0, 1, 0)
        assert hit["redis_commands"] == (1 if variant == "redis_shared" else 0)
        bodies.append(first.content)
    assert bodies == [bodies[0]] * len(VARIANTS)
    report = httpx.Response(200, content=bodies[0]).json()
    assert report["item"] == 7 and len(report["sections"]) == REPORT_SECTIONS
    assert len(bodies[0]) > 100_000  # the entry's size is what the memory lesson counts
    other = target.get("/local_cache/bounded_lru?item=8").content
    assert other != bodies[0]  # a report is the item's own
    assert pair_redis.exists(cache_key(7))  # in the pair's database, under its prefix


def test_the_dict_keeps_every_key_the_lru_stops_at_its_bound(
    target: httpx.Client, pair_redis: redis.Redis
) -> None:
    _reset(target)
    keys = BOUNDED_ENTRIES + 8
    for item in range(1, keys + 1):
        for variant in VARIANTS:
            assert target.get(f"/local_cache/{variant}?item={item}").status_code == 200
    stats = _stats(target)
    assert stats["unbounded_entries"] == keys
    assert stats["bounded_entries"] == BOUNDED_ENTRIES
    assert stats["redis_entries"] == keys
    assert stats["unbounded_bytes"] > (keys / BOUNDED_ENTRIES) * stats["bounded_bytes"] * 0.99
    # The least recently used went first: item 1 is a miss for the LRU, a hit for the dict.
    _, lru = get_counting(target, "/local_cache/bounded_lru?item=1")
    _, unbounded = get_counting(target, "/local_cache/unbounded_dict?item=1")
    assert (lru["local_cache_misses"], unbounded["local_cache_hits"]) == (1, 1)

    _reset(target)  # every cache empty, the pair's database too, the next read a miss
    assert _stats(target) == dict.fromkeys(stats, 0)
    assert pair_redis.dbsize() == 0
    _, after = get_counting(target, "/local_cache/unbounded_dict?item=1")
    assert after["local_cache_misses"] == 1


@pytest.mark.parametrize("item", ["0", "-3", str(MAX_ITEM + 1), "x"])
def test_a_bad_item_is_a_422(target: httpx.Client, item: str) -> None:
    for variant in VARIANTS:
        assert target.get(f"/local_cache/{variant}?item={item}").status_code == 422
