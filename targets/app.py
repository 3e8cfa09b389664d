"""The targets app: every registered pair's variants as routes, plus /healthz, /pairs, /metrics.

Run it with `pairbench serve`, or `uvicorn --factory pairbench.targets.app:create_app` with
PAIRBENCH_PG_DSN and PAIRBENCH_REDIS_URL set. Internal routes for the harness live under
/_pairbench: a pair's reset (POST) and state (GET), and the last explained request's plans.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI, Query, Request, Response
from prometheus_client import generate_latest

from pairbench.errors import EXIT_USAGE

from . import counters, downstream, groupmetrics, probes, slowdown
from .config import Settings
from .explain import ExplainMiddleware
from .introspect import Introspection
from .metrics import Metrics
from .openapi import PrometheusResponse, exact_bodies, media_response, responses
from .registry import INTERNAL_PREFIX, document, load_pairs
from .wire import ResponseBytesMiddleware

REDIS_INFO_COMMAND = "cmdstat_info"  # the scrape's own INFO: never counted
# Comma-separated pair names: serve only these (their routes, resources and counters); unset:
# every registered pair. A run's target serves the run's pairs, and the process group's members
# the group's, so that no server opens pools nobody loads (docs/architecture.md, "Servers and
# processes").
SERVE_PAIRS_ENV = "PAIRBENCH_SERVE_PAIRS"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; shared resources live in the lifespan, created once and closed at exit.

    A bad PAIRBENCH_SLOWDOWN, or one on a non-loopback PAIRBENCH_BIND_HOST, ends the process
    with one line on stderr and exit 2 (targets/slowdown.py).
    """
    settings = settings or Settings.from_env()
    registered = load_pairs()
    only = [n.strip() for n in os.environ.get(SERVE_PAIRS_ENV, "").split(",") if n.strip()]
    pairs = {n: p for n, p in registered.items() if n in only} if only else registered
    try:
        # Checked against every registered pair: naming one this server does not serve is no
        # error, it slows nothing here.
        slowed = {
            key: fraction
            for key, fraction in slowdown.from_env(registered).items()
            if key.split("/")[0] in pairs
        }
        if slowed:
            slowdown.require_loopback()
    except slowdown.SlowdownError as e:
        print(f"pairbench-targets: error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USAGE) from None
    metrics = Metrics(declared=[s for p in pairs.values() for s in p.declared.values()])

    async def on_new_connection(conn: asyncpg.Connection) -> None:
        # Runs once per physical connection: counts connects and attaches the query counter.
        metrics.connections_opened.inc()
        conn.add_query_logger(metrics.query_logger(conn))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.metrics = metrics
        app.state.settings = settings
        app.state.plans = []
        app.state.introspection = Introspection(settings.pg_dsn)
        app.state.pool = await asyncpg.create_pool(
            settings.pg_dsn,
            min_size=settings.pool_size,
            max_size=settings.pool_size,
            init=on_new_connection,
        )
        app.state.redis = aioredis.Redis.from_url(settings.redis_url)
        try:
            async with contextlib.AsyncExitStack() as stack:
                # First: the pairs' own resources may call the service (targets/downstream.py).
                await stack.enter_async_context(downstream.stats_reader(app))
                for pair in pairs.values():
                    for factory in pair.lifespans:
                        await stack.enter_async_context(factory(app))
                await stack.enter_async_context(metrics.watch_event_loop())
                yield
        finally:
            await app.state.redis.aclose()
            await app.state.pool.close()
            await app.state.introspection.close()

    app = FastAPI(title="pairbench targets", lifespan=lifespan)
    # Each add_middleware wraps the app so far: the byte counter, added last, is outermost and
    # sees the bytes as they leave, after the explain middleware has gathered any plans.
    app.add_middleware(ExplainMiddleware)
    app.add_middleware(ResponseBytesMiddleware, counter=metrics.response_bytes)
    if slowed:  # outermost: the delay follows everything the app does before the response start
        paths: dict[str, tuple[str, str, float]] = {}
        for key, fraction in slowed.items():
            pair_name, variant_name = key.split("/")
            paths[pairs[pair_name].path(variant_name)] = (pair_name, variant_name, fraction)
        app.add_middleware(
            slowdown.SlowdownMiddleware, paths=paths, counter=metrics.slowdown_seconds
        )
    app.include_router(probes.router)
    described = document(pairs)
    if slowed:
        described["slowdown"] = slowed

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/pairs")
    async def describe_pairs() -> dict[str, Any]:
        """The describe document (docs/architecture.md, "What the targets describe")."""
        return described

    @app.get("/metrics", response_class=PrometheusResponse)
    async def prometheus_metrics(
        request: Request,
        reset_peak: Annotated[int, Query(ge=0, le=1)] = 0,
        release: Annotated[int, Query(ge=0, le=1)] = 0,
        local: Annotated[int, Query(ge=0, le=1)] = 0,
    ) -> Response:
        """Prometheus text; `reset_peak=1` starts a new peak-memory window, with `release=1`
        after giving back what the previous variant freed (gc, malloc_trim: tens of ms). In the
        process group, the sum over every member (targets/groupmetrics.py); `local=1`: this
        process's own counters only, without the servers' (what a sibling adds to its own)."""
        metrics.peak_rss_bytes(reset=bool(reset_peak), release=bool(release))
        if local:
            metrics.set_scraped({})
            return PrometheusResponse(generate_latest(metrics.registry))
        metrics.set_scraped(await _scrape_servers(request, bool(reset_peak)))
        own = generate_latest(metrics.registry)
        others = groupmetrics.siblings()
        if others:
            own = await groupmetrics.gather(own, others, bool(reset_peak), bool(release))
        return PrometheusResponse(own)

    @app.get(f"{INTERNAL_PREFIX}/plans")
    async def plans(request: Request) -> list[dict[str, Any]]:
        """The access paths of the last request sent with X-Pairbench-Explain: 1."""
        last: list[dict[str, Any]] = request.app.state.plans
        return last

    bodies: list[tuple[str, str]] = []  # operations whose 200 body is declared
    for pair in pairs.values():
        for route in pair.routes.values():
            app.add_api_route(
                pair.path(route.subpath),
                route.handler,
                methods=list(route.methods),
                name=f"{pair.name}.{route.subpath}",
                tags=[pair.name],
                responses=responses(route.responses, route.body),
            )
            if route.body is not None:
                bodies += [(pair.path(route.subpath), m.lower()) for m in route.methods]
        for variant in pair.variants.values():
            # A variant that is not JSON (JSON lines) is documented with its own media type and
            # without the pair's JSON body.
            body = pair.body if variant.media_type is None else None
            app.add_api_route(
                pair.path(variant.name),
                variant.handler,
                methods=[variant.method],
                name=f"{pair.name}.{variant.name}",
                summary=f"{pair.title}: {variant.label}",
                tags=[pair.name],
                responses=responses(variant.responses, body),
                **media_response(variant.media_type),
            )
            if body is not None:
                bodies.append((pair.path(variant.name), variant.method.lower()))
        if pair.reset_handler is not None and pair.reset_path is not None:
            app.add_api_route(
                pair.reset_path, pair.reset_handler, methods=["POST"], tags=[pair.name]
            )
        if pair.state_handler is not None and pair.state_path is not None:
            app.add_api_route(
                pair.state_path, pair.state_handler, methods=["GET"], tags=[pair.name]
            )
    inferred = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, built once, with every declared body exactly as declared."""
        if app.openapi_schema is None:
            exact_bodies(inferred(), bodies)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _scrape_servers(
    request: Request, reset_peak: bool = False
) -> dict[str, tuple[str, float]]:
    """Counters read from Redis, PostgreSQL and the downstream now, by metric name (absent when
    unreadable); `reset_peak` restarts the downstream's peak window after reading it."""
    values: dict[str, tuple[str, float]] = {}
    redis: aioredis.Redis = request.app.state.redis
    try:
        stats: dict[str, Any] = await redis.info("commandstats")
    except (aioredis.RedisError, OSError):
        stats = {}
    if stats:
        commands = [v for k, v in stats.items() if k != REDIS_INFO_COMMAND and isinstance(v, dict)]
        calls = sum(int(v.get("calls", 0)) for v in commands)
        values[counters.REDIS_COMMANDS_METRIC] = ("Redis commands (INFO commandstats)", calls)
        # Redis runs commands one at a time: the time it spent in them is time every other
        # client waited (a KEYS walking the keyspace blocks them all).
        seconds = sum(int(v.get("usec", 0)) for v in commands) / 1e6
        values[counters.REDIS_SECONDS_METRIC] = ("Time Redis spent executing commands", seconds)
    introspection: Introspection = request.app.state.introspection
    pgss = await introspection.pg_stat_statements()
    if pgss is not None:
        rows, buffers = pgss
        values[counters.DB_ROWS_METRIC] = ("Rows returned or written (pg_stat_statements)", rows)
        values[counters.DB_BUFFERS_METRIC] = (
            "Shared buffers hit or read (pg_stat_statements)",
            buffers,
        )
    values.update(await downstream.scraped(request.app, reset_peak))
    metrics: Metrics = request.app.state.metrics
    for spec in metrics.read:  # the pairs' counters read from PostgreSQL
        assert spec.read is not None
        value = await introspection.value(spec.read)
        if value is not None:
            values[spec.metric.removesuffix("_total")] = (spec.help or spec.label, value)
    return values
