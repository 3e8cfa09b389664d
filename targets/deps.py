"""FastAPI dependencies the pair handlers share: the lifespan's pool, Redis client and metrics."""

from __future__ import annotations

from typing import Annotated

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Request

from .metrics import Metrics


def get_pool(request: Request) -> asyncpg.Pool:
    """The asyncpg pool created in the app's lifespan."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def get_redis(request: Request) -> aioredis.Redis:
    """The Redis client created in the app's lifespan."""
    client: aioredis.Redis = request.app.state.redis
    return client


def get_metrics(request: Request) -> Metrics:
    """The app's counters."""
    metrics: Metrics = request.app.state.metrics
    return metrics


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
RedisClient = Annotated[aioredis.Redis, Depends(get_redis)]
AppMetrics = Annotated[Metrics, Depends(get_metrics)]
