"""An unbounded fan-out (gather over every call at once) vs a bounded one (a shared semaphore).

A request needs `width` calls to another service (the knob): one per item of a list, as an
order's lines priced one by one. The way it is often written starts them all at once,
`asyncio.gather` over `width` coroutines (JavaScript's `Promise.all` over every item): the
service receives every user's every call together. It serves a few at once (its
concurrency); the rest queue there (or are refused, 503), and so does every other client of
the same service: a bystander making one call waits behind the whole queue. The fix bounds how
many calls the app has open at the service: a semaphore shared by every request (a per-request
one would not bound the total once several requests run), held around each call; the rest wait
in the app, where only this endpoint pays for them.

The cost is honest and shown: the bounded variant uses at most LIMIT of the service's slots, so
its own latency can be higher than the flood's; the lesson is the service's queue (the peak of
calls open there) and the other client's p99 (scenarios/fan_out.toml judges it).

The service is the harness's downstream (docs/architecture.md, "The downstream service"); the
scenario's [downstream] table sets its concurrency and what it does over it. Under `reject` a
refused call fails the request: the handler answers 502 naming the refusal (the service, not
the caller, is what failed), never a 500 or a partial list.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, HTTPException, Query, Request

from .. import downstream
from ..downstream import Downstream
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, PairError, Reference, ServerNeeds, Shows

MAX_WIDTH = 100  # bounded: the knob is user input, and each call is a request to the service
MAX_MS = 1_000  # the service's delay per call
DEFAULT_MS = 20
# Calls the bounded variant has open at the service at once, over all requests: half the
# service's slots in scenarios/fan_out.toml ([downstream] concurrency = 8), so its other
# clients always find one free.
LIMIT = 4
# Enough connections for every call of a quick run's users at the widest knob: the client's
# pool must not be what bounds the unbounded variant.
POOL_SIZE = 512
# A call waits at the service's queue behind every other call: generous, and explicit.
CALL_TIMEOUT_S = 30.0
# Shorter than the service's keep-alive (harness/downstream.py, KEEP_ALIVE_S): the client
# closes an idle connection first, so no request races the server's close.
KEEPALIVE_EXPIRY_S = 60.0
# The pair's reset waits this long for the service to finish an earlier trial's calls.
DRAIN_TIMEOUT_S = 20.0
DRAIN_POLL_S = 0.02
REJECTED = 503  # the service refused the call: over its concurrency limit (reject mode)
BAD_GATEWAY = 502


class Call(Body):
    id: int
    ms: int


class Calls(Body):
    """What the service answered for each call, in order."""

    width: int
    results: list[Call]


pair = Pair(
    name="fan_out",
    title="Unbounded fan-out (gather everything) vs a semaphore-bounded fan-out",
    summary="Every call of every request reaches the downstream at once; its other clients queue.",
    knob=Knob("width", "downstream calls per request", "calls"),
    counters=["downstream_calls", "downstream_peak_calls", "downstream_rejected"],
    body=Calls,
    server=ServerNeeds(downstream=True),
    reference=Reference(
        figure="no figure: a semaphore guards a resource of limited capacity; held around"
        " each call, it caps the calls a fan-out has open at a service",
        source="Python documentation, asyncio Synchronization Primitives (Semaphore)",
    ),
)

Width = Annotated[int, Query(ge=1, le=MAX_WIDTH, description="downstream calls per request")]
Ms = Annotated[int, Query(ge=0, le=MAX_MS, description="the service's delay per call (ms)")]


def _client(request: Request) -> httpx.AsyncClient:
    downstream.of(request)  # a 503 naming what is missing when the app runs without the service
    client: httpx.AsyncClient = request.app.state.fan_out_client
    return client


def _limit(request: Request) -> asyncio.Semaphore:
    limit: asyncio.Semaphore = request.app.state.fan_out_limit
    return limit


Client = Annotated[httpx.AsyncClient, Depends(_client)]
Limit = Annotated[asyncio.Semaphore, Depends(_limit)]


async def _call(client: httpx.AsyncClient, call: int, ms: int) -> dict[str, Any]:
    """One downstream call; a refusal (503) fails the request as a 502 naming it."""
    response = await client.get("/work", params={"id": call, "ms": ms})
    if response.status_code == REJECTED:
        raise HTTPException(
            BAD_GATEWAY, f"the downstream refused call {call} (503: over its concurrency limit)"
        )
    result: dict[str, Any] = response.raise_for_status().json()
    return result


@pair.variant("bad")
async def gather_all(client: Client, width: Width, ms: Ms = DEFAULT_MS) -> dict[str, Any]:
    """asyncio.gather over every call at once: the whole fan-out reaches the service together."""
    results = await asyncio.gather(*(_call(client, call, ms) for call in range(width)))
    return {"width": width, "results": results}


@pair.variant("good")
async def bounded_gather(
    client: Client, limit: Limit, width: Width, ms: Ms = DEFAULT_MS
) -> dict[str, Any]:
    """gather under a shared semaphore: at most LIMIT calls open at the service, app-wide."""

    async def bounded(call: int) -> dict[str, Any]:
        async with limit:  # the rest wait here, in the app, not in the service's queue
            return await _call(client, call, ms)

    results = await asyncio.gather(*(bounded(call) for call in range(width)))
    return {"width": width, "results": results}


@pair.route("neighbour", body=Call)
async def neighbour(request: Request, ms: Ms = DEFAULT_MS) -> dict[str, Any]:
    """The bystander: another client of the same service, one call through a client of its own."""
    downstream.of(request)
    client: httpx.AsyncClient = request.app.state.fan_out_neighbour
    return await _call(client, 0, ms)


@pair.reset
async def drain(request: Request) -> dict[str, Any]:
    """Before each trial and verification: wait until the service holds no call.

    A request cut off at the end of a trial leaves its gathered calls running (gather does not
    cancel them when the client goes away): the next trial would otherwise start behind the
    last one's queue, and a bounded trial after an unbounded one would pay for its flood.
    """
    downstream.of(request)
    stats: httpx.AsyncClient = request.app.state.downstream_stats
    deadline = asyncio.get_running_loop().time() + DRAIN_TIMEOUT_S
    while True:
        now = (await stats.get(downstream.STATS_PATH)).raise_for_status().json()
        if now["in_flight"] + now["waiting"] == 0:
            return {"status": "drained"}
        if asyncio.get_running_loop().time() > deadline:
            raise HTTPException(
                downstream.UNAVAILABLE_STATUS,
                f"the downstream still holds {now['in_flight']} calls and queues"
                f" {now['waiting']} after {DRAIN_TIMEOUT_S:g} s",
            )
        await asyncio.sleep(DRAIN_POLL_S)


def shared(service: Downstream) -> httpx.AsyncClient:
    """The variants' client: one per app, keep-alive, explicit timeouts, a pool that never
    bounds the fan-out (the lesson is what bounds it)."""
    limits = httpx.Limits(
        max_connections=POOL_SIZE,
        max_keepalive_connections=POOL_SIZE,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    return httpx.AsyncClient(
        base_url=service.url,
        verify=service.trust(),
        timeout=httpx.Timeout(CALL_TIMEOUT_S),
        limits=limits,
    )


@pair.lifespan
@contextlib.asynccontextmanager
async def _clients(app: FastAPI) -> AsyncIterator[None]:
    # The bound is the app's, not a request's: one semaphore for every request.
    app.state.fan_out_limit = asyncio.Semaphore(LIMIT)
    service: Downstream | None = app.state.downstream
    if service is None:  # the app serves the other pairs; this one answers 503
        yield
        return
    async with shared(service) as client, shared(service) as neighbours:
        app.state.fan_out_client = client
        app.state.fan_out_neighbour = neighbours
        yield


# The micro benchmark (docs/architecture.md, "The micro suite"): one request's MICRO_WIDTH
# calls to the downstream without HTTP in front and without other traffic. It shows what the
# bound costs a lone request (LIMIT calls at a time instead of the service's slots), not the
# lesson, which needs other clients of the service: the scenario's bystander.
MICRO_WIDTH = 16
MICRO_MS = 5


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_client(
    on: MicroServers,
) -> AsyncIterator[tuple[httpx.AsyncClient, asyncio.Semaphore]]:
    service = Downstream.from_env()
    if service is None:
        raise PairError(
            f"pair 'fan_out': its micro cores need the downstream service: set"
            f" {downstream.URL_ENV} and {downstream.CA_ENV}"
        )
    async with shared(service) as client:
        await client.get("/healthz")
        yield client, asyncio.Semaphore(LIMIT)


@pair.micro("gather_all", knob=MICRO_WIDTH)
async def _micro_gather_all(on: MicroServers) -> Any:
    client, _ = on.resource
    return await gather_all(client, MICRO_WIDTH, MICRO_MS)


@pair.micro("bounded_gather", knob=MICRO_WIDTH)
async def _micro_bounded_gather(on: MicroServers) -> Any:
    client, limit = on.resource
    return await bounded_gather(client, limit, MICRO_WIDTH, MICRO_MS)


pair.exercise(
    reference="bounded_gather",
    task="""Return the same body as `gather_all` (`{"width", "results"}`, the results in call
    order), but never have more than LIMIT calls open at the downstream service at once, counted
    over every request the app serves: `limit` is an asyncio.Semaphore(LIMIT) the app creates
    once in its lifespan. Hold it around each `_call(client, call, ms)`; keep the calls
    concurrent below the limit.""",
    knob=8,
    min_ratio=1.5,
    shows=[
        Shows(
            "downstream_peak_calls",
            "the service still receives more calls at once than it serves: the fan-out is not"
            " bounded across requests (a semaphore per request bounds only one request)",
            at_most=8,
        )
    ],
)
