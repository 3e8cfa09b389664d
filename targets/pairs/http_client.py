"""An HTTP client per call vs one shared client with keep-alive and timeouts.

A handler calls another service over HTTPS `calls` times (the knob). The way it is often
written builds an `httpx.AsyncClient` for each call, as `httpx.get` does behind its back: every
call opens a TCP connection and does a TLS handshake (and builds a TLS context) before its
request is sent, and closes it after. It also sets no timeout (`timeout=None`), so a call to a
service that hangs takes as long as the hang. The fix creates one client in the app's lifespan:
its pool keeps the connections alive between calls and requests, and its timeouts are explicit,
so a hung call fails fast, closing its connection, which frees the service's slot at once.

The service is the harness's downstream (docs/architecture.md, "The downstream service"): TLS
with a certificate made at start, `/work?id=I` answering `{"id": I, "ms": 0}`, at most a few
calls at once, the rest queued. The counter is the connections it accepted, read from its
/stats at every scrape of /metrics: one per call for the bad variant, none for the good one.

The timeouts scenario (scenarios/http_client_timeouts.toml) makes the first call of the
requests whose `key` is at most `hang` (keys 1..100: `hang` percent of them) hang at the
service. The bad variant waits out the hang (the service gives up after 0.8 s) and answers
with every result; the good one gives up after READ_TIMEOUT_S and answers with that call's
result missing (`null`) and `timed_out` counting it. Keys above `hang` never hang, and those are
the ones verification compares.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Query, Request

from .. import downstream
from ..downstream import Downstream
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, PairError, Reference, ServerNeeds, Shows

MAX_CALLS = 50  # bounded: the knob is user input, and each call is a round trip
MAX_KEY = 100  # a request's key, 1..100: `hang` percent of the keys hang
MAX_HANG = 50  # at most half the requests may hang
# The good client's limits. Read: the service answers /work in about a millisecond here; a
# call that has not answered in 200 ms is stuck. Connect and pool: a fresh connection's
# handshake, or a wait for a free connection, far beyond their usual milliseconds.
READ_TIMEOUT_S = 0.2
CONNECT_TIMEOUT_S = 2.0
POOL_TIMEOUT_S = 2.0
POOL_SIZE = 32  # more connections than a quick run has users; the pool never queues them
# Shorter than the service's keep-alive (harness/downstream.py, KEEP_ALIVE_S): the client
# closes an idle connection before the server does, so no request races the server's close.
KEEPALIVE_EXPIRY_S = 60.0
NEIGHBOUR_TIMEOUT_S = 5.0  # the bystander waits out any queue at the service: that is the figure


class Call(Body):
    id: int
    ms: int


class Calls(Body):
    """What the service answered for each call, in order (null: it timed out)."""

    key: int
    results: list[Call | None]
    timed_out: int


class Neighbour(Body):
    id: int
    ms: int


pair = Pair(
    name="http_client",
    title="A new HTTP client per call vs one shared client with timeouts",
    summary="Each downstream call opens a TCP and TLS connection, and waits out a hung call.",
    knob=Knob("calls", "downstream calls per request", "calls"),
    counters=["downstream_connections", "downstream_calls"],
    body=Calls,
    server=ServerNeeds(downstream=True),
    reference=Reference(
        figure="no figure: a client's connection pool brings 'reduced latency across requests"
        " (no handshaking)' and 'reduced CPU usage and round-trips' over a connection per request",
        source="HTTPX documentation, Clients: 'Why use a Client?'",
    ),
)

CallCount = Annotated[int, Query(ge=1, le=MAX_CALLS, description="downstream calls to make")]
Key = Annotated[int, Query(ge=1, le=MAX_KEY, description="the request's key (1..100)")]
Hang = Annotated[
    int, Query(ge=0, le=MAX_HANG, description="the first call hangs when key <= hang (percent)")
]
Service = Annotated[Downstream, Depends(downstream.of)]


def _shared(request: Request) -> httpx.AsyncClient:
    downstream.of(request)  # a 503 naming what is missing when the app runs without the service
    client: httpx.AsyncClient = request.app.state.http_client_shared
    return client


SharedClient = Annotated[httpx.AsyncClient, Depends(_shared)]


def _params(key: int, call: int, hang: int) -> dict[str, int]:
    """Call `call` of the request with `key`: its id, and whether the service should hang it."""
    params = {"id": key * MAX_CALLS + call}
    if call == 0 and key <= hang:
        params["hang"] = 1
    return params


@pair.variant("bad")
async def client_per_call(
    service: Service, calls: CallCount, key: Key = 1, hang: Hang = 0
) -> dict[str, Any]:
    """A new httpx.AsyncClient per call, no timeout: a TCP and TLS handshake every call."""
    results = []
    for call in range(calls):
        async with httpx.AsyncClient(
            base_url=service.url, verify=service.trust(), timeout=None
        ) as client:
            response = await client.get("/work", params=_params(key, call, hang))
        results.append(response.raise_for_status().json())
    return {"key": key, "results": results, "timed_out": 0}


@pair.variant("good")
async def shared_client(
    client: SharedClient, calls: CallCount, key: Key = 1, hang: Hang = 0
) -> dict[str, Any]:
    """One client from the lifespan: keep-alive connections, explicit timeouts."""
    results: list[Any] = []
    for call in range(calls):
        try:
            response = await client.get("/work", params=_params(key, call, hang))
        except httpx.TimeoutException:
            results.append(None)  # fail fast: the caller gets the rest, and the slot is freed
            continue
        results.append(response.raise_for_status().json())
    return {"key": key, "results": results, "timed_out": results.count(None)}


@pair.route("neighbour", body=Neighbour)
async def neighbour(request: Request) -> dict[str, Any]:
    """The bystander: one call to the same service through a client of its own (never hangs)."""
    downstream.of(request)
    client: httpx.AsyncClient = request.app.state.http_client_neighbour
    response = await client.get("/work", params={"id": 0})
    result: dict[str, Any] = response.raise_for_status().json()
    return result


@pair.route("downstream_stats")
async def downstream_stats(request: Request) -> dict[str, Any]:
    """The service's /stats, then a new window for its peaks (the scenario's stats_request)."""
    downstream.of(request)
    client: httpx.AsyncClient = request.app.state.downstream_stats
    response = await client.get(downstream.STATS_PATH, params={"reset": 1})
    stats: dict[str, Any] = response.raise_for_status().json()
    return stats


@pair.reset
async def warm(client: SharedClient) -> dict[str, str]:
    """Before each trial and verification: the shared pool holds a live connection, and the
    service holds no hung call.

    A service under steady traffic always has one; without this, a verification request made
    after the pool's idle connection expired would pay the one handshake the lesson is about.
    """
    (await client.get("/healthz")).raise_for_status()
    # And no call an earlier trial left hanging still holds one of the service's slots.
    (await client.get("/release")).raise_for_status()
    return {"status": "warm"}


def shared(service: Downstream) -> httpx.AsyncClient:
    """The good variant's client: keep-alive connections, every timeout explicit."""
    timeout = httpx.Timeout(
        READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S, pool=POOL_TIMEOUT_S, write=CONNECT_TIMEOUT_S
    )
    limits = httpx.Limits(
        max_connections=POOL_SIZE,
        max_keepalive_connections=POOL_SIZE,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    return httpx.AsyncClient(
        base_url=service.url, verify=service.trust(), timeout=timeout, limits=limits
    )


@pair.lifespan
@contextlib.asynccontextmanager
async def _clients(app: FastAPI) -> AsyncIterator[None]:
    service: Downstream | None = app.state.downstream
    if service is None:  # the app serves the other pairs; this one answers 503
        yield
        return
    async with (
        shared(service) as client,
        httpx.AsyncClient(
            base_url=service.url, verify=service.trust(), timeout=NEIGHBOUR_TIMEOUT_S
        ) as neighbours,
    ):
        app.state.http_client_shared = client
        app.state.http_client_neighbour = neighbours
        yield


# The micro benchmark (docs/architecture.md, "The micro suite"): MICRO_CALLS calls to the
# downstream service without HTTP in front, a client per call against the shared one. The
# suite starts the service and hands it over as the app gets it (PAIRBENCH_DOWNSTREAM_URL, _CA).
# Measured here (`pytest benchmarks/micro -k http_client`, twice): 3.86x and 3.59x, medians 66.2
# vs 17.2 ms and 69.5 vs 19.4 ms for the ten calls.
MICRO_CALLS = 10


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_clients(on: MicroServers) -> AsyncIterator[tuple[Downstream, httpx.AsyncClient]]:
    service = Downstream.from_env()
    if service is None:
        raise PairError(
            f"pair 'http_client': its micro cores need the downstream service: set"
            f" {downstream.URL_ENV} and {downstream.CA_ENV}"
        )
    async with shared(service) as client:
        await client.get("/healthz")  # its connection is open before the first timed call
        yield service, client


@pair.micro("client_per_call", knob=MICRO_CALLS)
async def _micro_client_per_call(on: MicroServers) -> Any:
    service, _ = on.resource
    return await client_per_call(service, MICRO_CALLS, 1, 0)


@pair.micro("shared_client", knob=MICRO_CALLS)
async def _micro_shared_client(on: MicroServers) -> Any:
    _, client = on.resource
    return await shared_client(client, MICRO_CALLS, 1, 0)


pair.exercise(
    reference="shared_client",
    task="""Return the same body as `client_per_call` (`{"key", "results", "timed_out"}`), but
    without building a client per call: `client` is an httpx.AsyncClient created once in the
    app's lifespan, with keep-alive connections and explicit timeouts. Make each call with it
    (`_params(key, call, hang)`); a call that times out (httpx.TimeoutException) becomes `None`
    in `results` and counts in `timed_out`.""",
    knob=10,
    min_ratio=2.0,
    shows=[
        Shows(
            "downstream_connections",
            "the service still accepts a connection per call: a client is still built per call",
        )
    ],
)
