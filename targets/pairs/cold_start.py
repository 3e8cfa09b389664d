"""A cold function vs a trimmed cold path vs a warm one: a model of serverless cold starts.

This is a model of a serverless platform on one machine, not a measurement of one: no
platform's scheduler, sandbox or network is involved, and its figures are this machine's.
What it keeps is the part of a cold start the function's own code decides: a cold invocation
is answered by a new Python process (the current interpreter, started here) that imports the
handler's modules and opens its database connection before it can answer; a warm invocation
is answered by a process kept alive between invocations (provisioned concurrency).

- `cold_eager` (bad): a cold invocation starts the handler module as usually written, every
  import at its top (a validation and a numeric library its other routes use, and the
  database driver) and the connection opened at start.
- `cold_lazy` (middle): the trimmed cold path: only the driver the invocation needs is
  imported, where it is needed, and the connection is opened on first use. Still a new process.
- `provisioned` (good): every invocation goes to one of WARM_PROCESSES processes started once
  and kept alive: no invocation starts cold.

The knob is the share of invocations that start cold, in percent: invocation number k (the
load draws it from 1..100) starts cold when k <= cold_pct, so the share is the knob on
average and each verification request knows whether it is cold. A cold process answers its
one invocation and is ended (its instance recycled); warm invocations of the cold variants
use the same kept-alive processes as `provisioned`. Counters: cold starts per request, and
the import and connect time of a cold start, reported by the function process itself.

The processes are bounded and never outlive the server: at most MAX_COLD_PROCESSES cold ones
start at once (the others wait), each is ended on every exit path of its invocation, the warm
ones when the app shuts down, and every one exits by itself when its stdin closes (the server
gone, even killed). They speak JSON lines on pipes and listen on no port (_cold_function.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response

from ..counters import MS_PER_S, per_sum_of
from ..deps import AppMetrics
from ..metrics import Metrics
from ..openapi import Body
from ..registry import Knob, Pair, Reference
from ._cold_function import DSN_ENV

FUNCTION_SCRIPT = Path(__file__).with_name("_cold_function.py")
INVOCATIONS = 100  # the invocation numbers the load draws (1..100): k <= cold_pct is cold
MAX_INVOCATION = 1_000_000
WARM_PROCESSES = 4  # provisioned concurrency: as many as the quick profile's users
MAX_COLD_PROCESSES = 4  # cold processes starting at once; further cold invocations wait
START_TIMEOUT_S = 30.0  # a process that is not ready by then is ended and the invocation fails
INVOKE_TIMEOUT_S = 10.0
END_TIMEOUT_S = 2.0  # after stdin closes, then SIGKILL
Mode = Literal["eager", "lazy"]


class Row(Body):
    n: int
    digest: str


class Invocation(Body):
    """What the function answers: ten rows derived from the invocation's number."""

    invocation: int
    rows: list[Row]


class Processes(Body):
    """The function processes alive now (their PIDs), warm and cold."""

    warm: list[int]
    cold: list[int]


pair = Pair(
    name="cold_start",
    title="Cold function vs warm (a model of serverless)",
    summary="A model, not a platform: a new process importing and connecting vs a kept-alive one.",
    knob=Knob("cold_pct", "invocations that start cold", "%", log_scale=False),
    counters=["cold_starts", "cold_import_seconds", "cold_connect_seconds"],
    body=Invocation,
    reference=Reference(
        figure="cold starts typically occur in under 1% of invocations and take from under"
        " 100 ms to over 1 second",
        source='the AWS Lambda operator guide, "Cold starts and latency" (production traffic'
        " on AWS Lambda, not this model)",
    ),
)
COLD_STARTS = pair.counter(
    "cold_starts", "Invocations answered by a new process", label="cold starts", unit="starts"
)
IMPORT_SECONDS = pair.counter(
    "cold_import_seconds",
    "Time cold function processes spent importing",
    label="import time of a cold start",
    unit="ms",
    per=per_sum_of(["cold_starts"]),
    scale=MS_PER_S,
)
CONNECT_SECONDS = pair.counter(
    "cold_connect_seconds",
    "Time cold function processes spent opening their database connection",
    label="connect time of a cold start",
    unit="ms",
    per=per_sum_of(["cold_starts"]),
    scale=MS_PER_S,
)


@dataclass(eq=False)  # kept in sets by identity
class Function:
    """One function process: its pipes, and what its start-up spent."""

    process: asyncio.subprocess.Process
    import_s: float
    connect_s: float

    async def invoke(self, invocation: int) -> dict[str, Any]:
        """One invocation: a JSON line out, a JSON line back."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"invocation": invocation}).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), INVOKE_TIMEOUT_S)
        if not line:
            raise RuntimeError(f"function process {self.process.pid} ended without answering")
        reply: dict[str, Any] = json.loads(line)
        return reply


@dataclass
class Platform:
    """The function processes of one app: the warm pool, the cold ones in flight, the bound."""

    dsn: str
    idle: asyncio.Queue[Function] = field(default_factory=asyncio.Queue)
    warm: set[Function] = field(default_factory=set)
    cold: set[Function] = field(default_factory=set)
    starting: set[asyncio.subprocess.Process] = field(default_factory=set)
    cold_slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_COLD_PROCESSES)
    )
    warm_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False

    async def spawn(self, mode: Mode) -> Function:
        """Start a function process and wait until it is ready (ended if it is not)."""
        if self.closed:
            raise HTTPException(status_code=503, detail="the app is shutting down")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",  # no user site, no PYTHON* variables: the same start-up everywhere
            str(FUNCTION_SCRIPT),
            mode,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, DSN_ENV: self.dsn},
        )
        self.starting.add(process)
        try:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
            if not line:
                raise RuntimeError(f"function process {process.pid} ended while starting")
            ready = json.loads(line)
        except BaseException:
            await end(process)
            raise
        finally:
            self.starting.discard(process)
        return Function(process, float(ready["import_s"]), float(ready["connect_s"]))

    async def invoke_cold(self, mode: Mode, invocation: int, metrics: Metrics) -> dict[str, Any]:
        """A new process answers the invocation and is ended, whatever happens."""
        async with self.cold_slots:
            function = await self.spawn(mode)
            self.cold.add(function)
            try:
                reply = await function.invoke(invocation)
            finally:
                self.cold.discard(function)
                await end(function.process)
        metrics.inc(COLD_STARTS)
        metrics.inc(IMPORT_SECONDS, function.import_s + float(reply["import_s"]))
        metrics.inc(CONNECT_SECONDS, function.connect_s + float(reply["connect_s"]))
        return reply

    async def invoke_warm(self, invocation: int) -> dict[str, Any]:
        """A kept-alive process answers; the pool starts them on first use, up to its size."""
        function = await self._take_warm()
        try:
            reply = await function.invoke(invocation)
        except BaseException:
            self.warm.discard(function)  # its state is unknown: end it, the pool starts another
            await end(function.process)
            raise
        self.idle.put_nowait(function)
        return reply

    async def _take_warm(self) -> Function:
        if self.idle.empty():
            async with self.warm_lock:
                if self.idle.empty() and len(self.warm) < WARM_PROCESSES:
                    function = await self.spawn("eager")
                    self.warm.add(function)
                    return function
        return await self.idle.get()

    async def close(self) -> None:
        """End every function process (the app's shutdown)."""
        self.closed = True
        processes = [f.process for f in (*self.warm, *self.cold)] + list(self.starting)
        await asyncio.gather(*(end(p) for p in processes))
        self.warm.clear()
        self.cold.clear()


async def end(process: asyncio.subprocess.Process) -> None:
    """End a function process: close its stdin (it exits), then SIGKILL if it does not."""
    if process.returncode is None and process.stdin is not None:
        process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), END_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.cold_start
    return platform


AppPlatform = Annotated[Platform, Depends(_platform)]
InvocationNumber = Annotated[
    int, Query(ge=1, le=MAX_INVOCATION, description="the invocation's number (its data)")
]
ColdPct = Annotated[int, Query(ge=0, le=100, description="invocations that start cold (%)")]


def starts_cold(invocation: int, cold_pct: int) -> bool:
    """Invocation k of each hundred starts cold when k <= cold_pct (the knob's share)."""
    return (invocation - 1) % INVOCATIONS < cold_pct


@pair.variant("bad")
async def cold_eager(
    platform: AppPlatform, metrics: AppMetrics, invocation: InvocationNumber, cold_pct: ColdPct
) -> Response:
    """Cold, eager: a new process imports everything and connects before answering."""
    if starts_cold(invocation, cold_pct):
        return _json(await platform.invoke_cold("eager", invocation, metrics))
    return _json(await platform.invoke_warm(invocation))


@pair.variant("middle")
async def cold_lazy(
    platform: AppPlatform, metrics: AppMetrics, invocation: InvocationNumber, cold_pct: ColdPct
) -> Response:
    """Cold, trimmed: a new process imports only the driver, connecting on first use."""
    if starts_cold(invocation, cold_pct):
        return _json(await platform.invoke_cold("lazy", invocation, metrics))
    return _json(await platform.invoke_warm(invocation))


@pair.variant("good")
async def provisioned(
    platform: AppPlatform, invocation: InvocationNumber, cold_pct: ColdPct
) -> Response:
    """Provisioned: kept-alive processes answer every invocation; none starts cold."""
    del cold_pct  # the share the other variants start cold; provisioned capacity has none
    return _json(await platform.invoke_warm(invocation))


def _json(reply: dict[str, Any]) -> Response:
    return Response(json.dumps(reply["body"], separators=(",", ":")), media_type="application/json")


@pair.route("processes", body=Processes)
async def processes(platform: AppPlatform) -> dict[str, list[int]]:
    """The function processes alive now: a test checks none outlives the server."""
    return {
        "warm": sorted(f.process.pid for f in platform.warm),
        "cold": sorted([f.process.pid for f in platform.cold] + [p.pid for p in platform.starting]),
    }


@pair.lifespan
@contextlib.asynccontextmanager
async def _platform_lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The function processes connect as the app does (its DSN, from the app's configuration).
    platform = Platform(app.state.settings.pg_dsn)
    app.state.cold_start = platform
    try:
        yield
    finally:
        await platform.close()


pair.no_exercise(
    """The cold path is a process the platform starts, not a handler's code path: the lesson is
    choosing provisioned capacity or trimming the function's imports, which a stub of the
    handler cannot show."""
)


pair.no_micro(
    """A cold start is a process launch (an interpreter, its imports and a connection), not an
    in-process core: there is nothing to call without the process around it."""
)
