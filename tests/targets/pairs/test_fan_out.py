"""fan_out: both variants return the same results from the real downstream service; the
unbounded gather has more calls open at the service than the bounded one ever does; under the
service's reject mode the flood fails as a 502 naming the refusal while the bounded fan-out
passes; the pair's reset waits for an earlier request's calls to end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from pairbench.harness import server
from pairbench.harness.downstream import DEFAULT_CONCURRENCY, RunningDownstream
from pairbench.targets.pairs.fan_out import LIMIT, MAX_MS, MAX_WIDTH, pair

from .counting import get_counting

VARIANTS = ["gather_all", "bounded_gather"]
WIDTH = 16  # twice the service's default slots: the flood queues there


def _drain(target: httpx.Client) -> None:
    reset = pair.reset_path
    assert reset is not None
    response = target.post(reset)
    assert response.status_code == 200, response.text


def _peak(target: httpx.Client, path: str) -> tuple[httpx.Response, dict[str, float]]:
    """GET `path` between a scrape that restarts the service's peak window and one that reads it."""
    target.get("/metrics?reset_peak=1")
    return get_counting(target, path)


@pytest.fixture
def rejecting(downstream_service: RunningDownstream) -> Iterator[RunningDownstream]:
    """The session's service refusing calls beyond LIMIT + 2, restored to its defaults after."""
    downstream_service.configure(LIMIT + 2, "reject")
    try:
        yield downstream_service
    finally:
        downstream_service.configure(DEFAULT_CONCURRENCY, "queue")


def test_same_results_every_call_once_and_the_bound_holds(target: httpx.Client) -> None:
    bodies, peaks = {}, {}
    for variant in VARIANTS:
        _drain(target)
        response, counters = _peak(target, f"/fan_out/{variant}?width={WIDTH}&ms=200")
        assert response.status_code == 200, response.text
        bodies[variant] = response.json()
        assert counters["downstream_calls"] == WIDTH
        assert counters["downstream_rejected"] == 0
        peaks[variant] = counters["downstream_peak_calls"]
    assert bodies["gather_all"] == bodies["bounded_gather"]
    assert bodies["gather_all"] == {
        "width": WIDTH,
        "results": [{"id": call, "ms": 200} for call in range(WIDTH)],
    }
    # The semaphore is a hard bound; the flood's peak is what reached the service before the
    # first calls were answered (all of them on an idle machine; fewer on a loaded one).
    assert peaks["bounded_gather"] <= LIMIT
    assert peaks["gather_all"] > LIMIT, peaks


def test_the_bound_is_shared_by_concurrent_requests(target_server: server.TargetServer) -> None:
    """Three requests at once: a per-request semaphore would let 3 x LIMIT calls through."""

    async def three() -> list[int]:
        async with httpx.AsyncClient(base_url=target_server.url, timeout=30) as client:
            replies = await asyncio.gather(
                *(client.get("/fan_out/bounded_gather?width=8&ms=200") for _ in range(3))
            )
        return [r.status_code for r in replies]

    with httpx.Client(base_url=target_server.url, timeout=30) as target:
        _drain(target)
        target.get("/metrics?reset_peak=1")
        assert asyncio.run(three()) == [200] * 3
        _, counters = get_counting(target, "/fan_out/neighbour?ms=0")
    assert counters["downstream_peak_calls"] <= LIMIT


def test_a_refusing_service_fails_the_flood_as_502_and_not_the_bounded(
    target: httpx.Client, rejecting: RunningDownstream
) -> None:
    _drain(target)
    response, counters = _peak(target, f"/fan_out/gather_all?width={WIDTH}&ms=500")
    assert response.status_code == 502, response.text
    assert "the downstream refused call" in response.json()["detail"]
    assert counters["downstream_rejected"] >= 1
    _drain(target)  # the flood's other calls still run after the 502: wait them out
    response, counters = _peak(target, f"/fan_out/bounded_gather?width={WIDTH}&ms=20")
    assert response.status_code == 200, response.text
    assert counters["downstream_rejected"] == 0
    assert counters["downstream_calls"] == WIDTH


def test_reset_waits_for_an_earlier_request_s_calls(target_server: server.TargetServer) -> None:
    async def cut_off_then_drain() -> None:
        async with httpx.AsyncClient(base_url=target_server.url, timeout=30) as client:
            # The client gives up; the handler's gathered calls go on at the service.
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/fan_out/gather_all?width=8&ms=400", timeout=0.2)
            reset = pair.reset_path
            assert reset is not None
            assert (await client.post(reset)).status_code == 200

    asyncio.run(cut_off_then_drain())
    with httpx.Client(base_url=target_server.url, timeout=30) as target:
        _, counters = _peak(target, "/fan_out/neighbour?ms=0")
    assert counters["downstream_peak_calls"] == 1  # only the neighbour's own call was open


@pytest.mark.parametrize(
    "query", ["width=0", f"width={MAX_WIDTH + 1}", "width=2&ms=-1", f"width=2&ms={MAX_MS + 1}"]
)
def test_bad_input_is_refused(target: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        assert target.get(f"/fan_out/{variant}?{query}").status_code == 422
    assert target.get("/fan_out/neighbour?ms=-1").status_code == 422
