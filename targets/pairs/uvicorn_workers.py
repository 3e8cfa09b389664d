"""One server process vs one per core: the same CPU-bound handler, served by 1 or N processes.

Node's `cluster` module forks one worker per CPU because one event loop runs on one core;
Python's answer is the same: `uvicorn --workers N` (or gunicorn with uvicorn workers), N
processes accepting from one shared listening socket. Both variants are the same handler, K ms
of pure-Python CPU (targets/pairs/cpu.py's LCG) per request; only how many processes may serve
it differs. The harness serves this pair from its process group (docs/architecture.md, "The
process group"): `one_process` goes to one member's private port, so its siblings stay idle, a
one-process deployment; `per_core` goes to the shared port, where the kernel hands each new
connection to whichever member accepts it first.

What this machine shows (scenarios/uvicorn_workers.toml has the figures): on 2 cores shared
with the load generator, PostgreSQL and Valkey, per_core's p50 is about 1.8x lower at 10 ms, not
2x. Keep-alive pins each locust user's connection to the member that accepted it, and when a
trial's users connect in a burst one member may accept them all: with 4 users most per_core
trials kept one core busy; with 8, 2 trials in 14. `cores_busy` (server CPU seconds per wall
second, summed over the group) shows it: about 1.0 for one_process, 1.9-2.0 for per_core when
its connections are spread.

Every member must do the same iterations and send the same body, so the calibration (iterations
per ms) is made once per deployment: the first process to start stores its figure under one key
in the app's own Redis database, and every process, that one included, uses the stored figure.
Not in a logical database of the pair's own: those are emptied with FLUSHDB by the pairs that
own them, and the numbers of another context's (the gate's baseline, a workshop check) overlap
them, so a figure stored there was lost mid-session and a group calibrated anew (a failed test).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import FastAPI, Query, Request, Response

from ..metrics import Metrics
from ..openapi import Body
from ..registry import Knob, Pair, ServerNeeds
from .cpu import Calibration, calibrate, spin

MAX_MS = 200  # bounded: CPU time is user input, and one request must not hold a core for long
CALIBRATION_KEY = "uvicorn_workers:calibration"
# Long enough for any run; a stale figure only rescales `ms`, every process still agrees.
CALIBRATION_TTL_S = 24 * 3600
PID_HEADER = "X-Pairbench-Pid"  # which process served: the tests read it, bodies stay equal


class Reply(Body):
    """Both variants' body: the same iterations give the same result in every process."""

    ms: int
    iterations: int
    result: int


pair = Pair(
    name="uvicorn_workers",
    title="One server process vs one per core",
    summary="K ms of pure-Python CPU per request, served by one uvicorn process or by one per"
    " core on a shared socket.",
    knob=Knob("ms", "CPU time per request", "ms"),
    counters=["cores_busy", "cpu_seconds", "group_requests"],
    server=ServerNeeds(one_process=("one_process",)),
    body=Reply,
    reference=None,  # no published figure for this setup is known
)

# Counted in whichever process served: /metrics sums the group, so one request adds exactly 1
# (the verification's mechanism check reads the summed counter through the shared port).
GROUP_REQUESTS = pair.counter(
    "group_requests",
    "Requests served by any process of the deployment",
    label="requests served (all processes)",
    unit="requests",
)

CpuMs = Annotated[int, Query(ge=1, le=MAX_MS, description="CPU milliseconds per request")]


@pair.variant("bad")
async def one_process(ms: CpuMs, request: Request, response: Response) -> dict[str, int]:
    """One uvicorn process: one event loop on one core serves every request."""
    return _work(ms, request, response)


@pair.variant("good")
async def per_core(ms: CpuMs, request: Request, response: Response) -> dict[str, int]:
    """One uvicorn process per core on a shared socket (uvicorn --workers N)."""
    return _work(ms, request, response)


def _work(ms: int, request: Request, response: Response) -> dict[str, int]:
    """The handler both variants share: the lesson is in the deployment, not in this code."""
    calibration: Calibration = request.app.state.uvicorn_workers
    iterations = calibration.iterations(ms)
    response.headers[PID_HEADER] = str(os.getpid())
    metrics: Metrics = request.app.state.metrics
    metrics.inc(GROUP_REQUESTS)
    return {"ms": ms, "iterations": iterations, "result": spin(iterations, ms)}


@pair.lifespan
@contextlib.asynccontextmanager
async def shared_calibration(app: FastAPI) -> AsyncIterator[None]:
    """The deployment's figure, stored in Redis by the first process that calibrated; only a
    process that finds none calibrates (a third of a second of CPU that every start of the
    targets would otherwise pay), and two that race keep the first one stored."""
    redis: aioredis.Redis = app.state.redis
    stored = await redis.get(CALIBRATION_KEY)
    mine = None
    if stored is None:
        mine = calibrate(workers=0)
        await redis.set(CALIBRATION_KEY, json.dumps(asdict(mine)), nx=True, ex=CALIBRATION_TTL_S)
        stored = await redis.get(CALIBRATION_KEY)
    app.state.uvicorn_workers = Calibration(**json.loads(stored)) if stored else mine
    yield


# No micro core: the lesson is how many processes serve, which one in-process call cannot show.
pair.no_micro("a process count is a deployment setting: no in-process core can show it")
# No exercise: the participant writes no handler here, only a deployment setting.
pair.no_exercise("a deployment setting (uvicorn --workers), not a handler the participant writes")
