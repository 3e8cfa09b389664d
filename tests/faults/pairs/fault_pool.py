"""Fault-matrix pair: a process pool started the plain way, with no parent watch of its own.

Loaded through PAIRBENCH_PAIRS by tests/faults only. Its lifespan starts a forkserver
ProcessPoolExecutor, so the target server has the grandchildren a pool brings (the fork
server, a worker, the resource tracker), and nothing in them exits when the server is killed:
what ends them is the harness's (docs/architecture.md, "Owning the process tree").
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from typing import Annotated

from fastapi import FastAPI, Query, Request

from pairbench.targets.registry import Knob, Pair

pair = Pair(
    name="fault_pool",
    title="Sleeping on the event loop vs in a process pool",
    summary="ms milliseconds per request: time.sleep inline vs in a forkserver pool.",
    knob=Knob("ms", "milliseconds per request", "ms"),
    counters=["loop_lag_seconds_sum"],
)

Ms = Annotated[int, Query(ge=1, le=100, description="milliseconds per request")]


@pair.variant("bad")
async def inline(ms: Ms) -> dict[str, int]:
    """time.sleep inside async def: the loop waits."""
    time.sleep(ms / 1000)
    return {"ms": ms}


@pair.variant("good")
async def pooled(ms: Ms, request: Request) -> dict[str, int]:
    """time.sleep in a worker process: the loop stays free."""
    pool: ProcessPoolExecutor = request.app.state.fault_pool
    await asyncio.get_running_loop().run_in_executor(pool, time.sleep, ms / 1000)
    return {"ms": ms}


@pair.lifespan
@contextlib.asynccontextmanager
async def process_pool(app: FastAPI) -> AsyncIterator[None]:
    """A one-worker forkserver pool, its worker started now."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("forkserver"))
    try:
        await asyncio.get_running_loop().run_in_executor(pool, time.sleep, 0)
        app.state.fault_pool = pool
        yield
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
