"""blocking_io: three variants wait the same milliseconds in the database and return the same
body; only the sync driver inside async def blocks the event loop (its own counter and the
server's loop lag say so, and a bystander's pings wait)."""

from __future__ import annotations

import asyncio
import time

import httpx
import psycopg
import pytest

from pairbench.harness import services
from pairbench.targets.pairs.blocking_io import (
    APPLICATION_NAME,
    MAX_MS,
    SYNC_POOL_SIZE,
    pair,
)

from .counting import get_counting, lag_samples_above

VARIANTS = ["sync_driver", "thread_pool", "async_driver"]
# The mechanism: 4 requests waiting 100 ms each in the database, with /blocking_io/ping measured
# alongside. The sync driver blocks the loop for 100 ms at a time, so some ping waits most of a
# block; awaited (or in a thread) pings answer in a few ms. FROZEN_S (50 ms) sits far from both.
LOAD_MS = 100
LOAD_REQUESTS = 4
FROZEN_S = 0.050
PING_INTERVAL_S = 0.005
LAG_BUCKET = "0.05"  # a pairbench_event_loop_lag_seconds bucket bound, equal to FROZEN_S


async def _ping_while_loaded(base_url: str, variant: str) -> list[float]:
    """Ping latencies (seconds) measured while LOAD_REQUESTS waiting requests run concurrently."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        await client.get("/blocking_io/ping")  # a warm connection: measure the server
        load = [
            asyncio.create_task(client.get(f"/blocking_io/{variant}?ms={LOAD_MS}"))
            for _ in range(LOAD_REQUESTS)
        ]
        latencies = []
        while not all(task.done() for task in load):
            start = time.perf_counter()
            response = await client.get("/blocking_io/ping")
            latencies.append(time.perf_counter() - start)
            assert response.status_code == 200
            await asyncio.sleep(PING_INTERVAL_S)
        assert all(r.status_code == 200 for r in await asyncio.gather(*load))
    return latencies


def test_the_thread_pool_is_the_middle_road() -> None:
    assert list(pair.variants) == VARIANTS
    assert [v.role for v in pair.variants.values()] == ["bad", "middle", "good"]
    assert list(pair.counters) == ["loop_lag_seconds_sum", "loop_blocking_calls"]


@pytest.mark.parametrize("ms", [1, 7, 40])
def test_variants_wait_the_same_and_return_the_same(target: httpx.Client, ms: int) -> None:
    for variant in VARIANTS:
        start = time.perf_counter()
        response = target.get(f"/blocking_io/{variant}?ms={ms}")
        elapsed = time.perf_counter() - start
        assert response.status_code == 200, response.text
        assert response.json() == {"ms": ms}  # as the database returned it
        assert elapsed >= ms / 1000, f"{variant}: answered in {elapsed * 1000:.1f} ms"


@pytest.mark.parametrize(
    ("variant", "on_loop"), [("sync_driver", 1), ("thread_pool", 0), ("async_driver", 0)]
)
def test_only_the_sync_driver_in_async_def_calls_on_the_loop(
    target: httpx.Client, variant: str, on_loop: int
) -> None:
    response, grown = get_counting(target, f"/blocking_io/{variant}?ms=5")
    assert response.status_code == 200
    assert grown["loop_blocking_calls"] == on_loop


@pytest.mark.parametrize("query", ["ms=0", f"ms={MAX_MS + 1}", "ms=abc", "ms=2.5", ""])
@pytest.mark.parametrize("variant", VARIANTS)
def test_bad_ms_is_rejected(target: httpx.Client, variant: str, query: str) -> None:
    assert target.get(f"/blocking_io/{variant}?{query}").status_code == 422


def test_the_sync_driver_freezes_the_loop_and_the_others_do_not(target: httpx.Client) -> None:
    base_url = str(target.base_url)
    before = target.get("/metrics").text
    blocked = asyncio.run(_ping_while_loaded(base_url, "sync_driver"))
    middle = target.get("/metrics").text
    free = {v: asyncio.run(_ping_while_loaded(base_url, v)) for v in VARIANTS[1:]}
    after = target.get("/metrics").text

    assert max(blocked) >= FROZEN_S, f"sync_driver: ping max {max(blocked) * 1000:.1f} ms"
    for variant, pings in free.items():
        # A shared 2-core machine may give one ping a scheduler hiccup; a frozen loop gives many.
        slowest_but_one = sorted(pings)[-2]
        assert slowest_but_one < FROZEN_S, f"{variant}: pings {sorted(pings)[-3:]} s"
    # The server's own view: its loop-lag sampler woke late only under the sync driver.
    assert lag_samples_above(middle, LAG_BUCKET) - lag_samples_above(before, LAG_BUCKET) >= 1
    assert lag_samples_above(after, LAG_BUCKET) == lag_samples_above(middle, LAG_BUCKET)


def test_the_sync_pool_is_the_pairs_own_and_full(
    target: httpx.Client, servers: services.Endpoints
) -> None:
    """The sync connections are opened at startup, so no request pays for a connect."""
    assert target.get("/blocking_io/thread_pool?ms=1").status_code == 200
    with psycopg.connect(servers.pg_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION_NAME,),
        ).fetchone()
    assert row is not None and row[0] == SYNC_POOL_SIZE
