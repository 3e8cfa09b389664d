"""The targets app: every registered pair's variants as routes, plus /healthz, /pairs, /metrics.

Run it with `pairbench serve`, or `uvicorn --factory pairbench.targets.app:create_app` with
PAIRBENCH_PG_DSN and PAIRBENCH_REDIS_URL set.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import probes
from .config import Settings
from .metrics import Metrics
from .registry import load_pairs


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; shared resources live in the lifespan, created once and closed at exit."""
    settings = settings or Settings.from_env()
    metrics = Metrics()

    async def on_new_connection(conn: asyncpg.Connection) -> None:
        # Runs once per physical connection: counts connects and attaches the query counter.
        metrics.connections_opened.inc()
        conn.add_query_logger(metrics.query_logger(conn))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.metrics = metrics
        app.state.settings = settings
        app.state.pool = await asyncpg.create_pool(
            settings.pg_dsn,
            min_size=settings.pool_size,
            max_size=settings.pool_size,
            init=on_new_connection,
        )
        app.state.redis = aioredis.Redis.from_url(settings.redis_url)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for pair in pairs.values():
                    for factory in pair.lifespans:
                        await stack.enter_async_context(factory(app))
                await stack.enter_async_context(metrics.watch_event_loop())
                yield
        finally:
            await app.state.redis.aclose()
            await app.state.pool.close()

    app = FastAPI(title="pairbench targets", lifespan=lifespan)
    app.include_router(probes.router)
    pairs = load_pairs()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/pairs")
    async def list_pairs() -> list[dict[str, Any]]:
        return [pair.describe() for pair in pairs.values()]

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for pair in pairs.values():
        for subpath, handler in pair.routes.items():
            app.add_api_route(f"/{pair.name}/{subpath}", handler, methods=["GET"], tags=[pair.name])
        for variant in pair.variants.values():
            app.add_api_route(
                pair.path(variant.name),
                variant.handler,
                methods=["GET"],
                name=f"{pair.name}.{variant.name}",
                summary=f"{pair.title}: {variant.label}",
                tags=[pair.name],
            )
    return app
