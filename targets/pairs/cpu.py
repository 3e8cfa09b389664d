"""CPU work on the event loop vs offloaded: K milliseconds of pure-Python computation per request.

The bad variant computes inside `async def`: while it runs, the event loop serves nobody, so
every other request (even a trivial one) waits behind it. Moving the work to a thread looks like
the fix but is the trap: pure-Python code holds the GIL, so the loop thread still has to win it
back in switch-interval slices. A process pool runs the work beside the loop, which stays free.
The middle road often advised for tens to hundreds of milliseconds of work keeps it on the loop
but shares the loop: the work split into chunks of CHUNK_MS with `await asyncio.sleep(0)`
between them, so other requests run between the chunks, and the request itself pays for each
yield and for the others' chunks now run in the middle of its own. The cheap /cpu/ping shows
the collateral damage: load it alongside and watch its latency.

The work is an integer LCG iterated in pure Python, deterministic in its inputs. Its cost is
calibrated once at startup (iterations per millisecond, in the server process); every variant,
and every worker process, runs the same iteration count, so all four do identical work and
return byte-identical JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request

from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Shows

MAX_MS = 1000  # bounded: CPU time is user input, and one request must not hold a core for long
# Leave one core to the event loop (and, on a 2-core box, to Postgres and the load generator
# too): a worker per core would time-slice against the very loop it is meant to keep free. On
# this 2-core machine that is a single worker, so the process variant buys responsiveness
# (the loop and /cpu/ping stay fast), not throughput.
PROCESS_WORKERS = max(1, (os.cpu_count() or 1) - 1)
# forkserver, never fork: the server forks while it runs an event loop and threads (the default
# executor, the thread variant); fork copies only the calling thread, so a lock held by another
# thread stays locked forever in the child, and the child inherits the loop's epoll descriptor
# and every socket. forkserver forks workers from a clean single-threaded server (Python 3.14's
# default on Linux) and, unlike spawn, imports this module once instead of once per worker.
START_METHOD = "forkserver"

# A 64-bit LCG (Knuth's MMIX constants): cheap, deterministic, pure-Python integer work.
LCG_MULTIPLIER = 6364136223846793005
LCG_INCREMENT = 1442695040888963407
LCG_MASK = (1 << 64) - 1

# The chunked variant's work between two yields: the longest one request holds the loop at a
# time. Each yield costs a trip through the loop (tens of microseconds), so smaller chunks buy
# the bystander less than they cost the request.
CHUNK_MS = 1

CALIBRATION_START_ITERATIONS = 10_000
CALIBRATION_MIN_MS = 50.0  # long enough that timer resolution and call overhead are noise
CALIBRATION_RUNS = 5  # the fastest run wins: interference only ever makes a run slower


class Reply(Body):
    """Every variant's body: the same iterations give the same result."""

    ms: int
    iterations: int
    result: int


class Status(Body):
    status: str


class CalibrationBody(Body):
    """/cpu/calibration's body: the Calibration below, as JSON (the fuzz test checks they agree)."""

    iterations_per_ms: float
    sample_iterations: int
    sample_ms: float
    runs: int
    pid: int
    workers: int
    start_method: str


pair = Pair(
    name="cpu",
    title="CPU work on the event loop vs offloaded",
    summary="K ms of pure-Python CPU per request: inline, in a thread, chunked, or in a process"
    " pool.",
    knob=Knob("ms", "CPU time per request", "ms"),
    counters=["loop_lag_seconds_sum"],  # mean event-loop lag: what the bystanders wait for
    reference=None,  # no published figure for this setup is known
    body=Reply,
)

CpuMs = Annotated[int, Query(ge=1, le=MAX_MS, description="CPU milliseconds per request")]


def spin(iterations: int, seed: int) -> int:
    """Iterate the LCG `iterations` times from `seed`: pure Python, so it holds the GIL throughout."""
    x = seed
    for _ in range(iterations):
        x = (x * LCG_MULTIPLIER + LCG_INCREMENT) & LCG_MASK
    return x


@pair.variant("bad")
async def inline(ms: CpuMs, cpu: Cpu) -> dict[str, int]:
    """CPU work inside async def: the event loop serves nobody else until it finishes."""
    iterations = cpu.calibration.iterations(ms)
    result = spin(iterations, ms)
    return _reply(ms, iterations, result)


@pair.variant("middle")
async def thread(ms: CpuMs, cpu: Cpu) -> dict[str, int]:
    """asyncio.to_thread: the GIL still serializes pure-Python work and starves the loop."""
    iterations = cpu.calibration.iterations(ms)
    result = await asyncio.to_thread(spin, iterations, ms)
    return _reply(ms, iterations, result)


@pair.variant("middle")
async def chunked(ms: CpuMs, cpu: Cpu) -> dict[str, int]:
    """Chunks of 1 ms with await asyncio.sleep(0) between: others run between the chunks."""
    iterations = cpu.calibration.iterations(ms)
    chunk = cpu.calibration.iterations(CHUNK_MS)
    result = ms  # the seed: each chunk carries the LCG on from where the last one stopped
    for done in range(0, iterations, chunk):
        result = spin(min(chunk, iterations - done), result)
        await asyncio.sleep(0)  # yield: the loop serves whatever became ready meanwhile
    return _reply(ms, iterations, result)


@pair.variant("good")
async def process(ms: CpuMs, cpu: Cpu) -> dict[str, int]:
    """A process pool via run_in_executor: the work runs beside the loop, which stays free."""
    iterations = cpu.calibration.iterations(ms)
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(cpu.executor, spin, iterations, ms)
    return _reply(ms, iterations, result)


@pair.route("ping", body=Status)
async def ping() -> dict[str, str]:
    """A trivial endpoint on the same event loop: its latency shows what the CPU work costs others."""
    return {"status": "ok"}


@pair.route("calibration", body=CalibrationBody)
async def calibration(cpu: Cpu) -> dict[str, Any]:
    """The startup calibration: iterations per ms, measured in the server process."""
    return asdict(cpu.calibration)


# Calibration and the process pool: the pair's own resources, made in its lifespan.


@dataclass(frozen=True)
class Calibration:
    """How many LCG iterations make one millisecond of CPU in the server process."""

    iterations_per_ms: float
    sample_iterations: int
    sample_ms: float  # CPU time of the fastest run
    runs: int
    pid: int
    workers: int
    start_method: str

    def iterations(self, ms: int) -> int:
        return max(1, round(ms * self.iterations_per_ms))


def calibrate(workers: int) -> Calibration:
    """Time `spin` until a run lasts CALIBRATION_MIN_MS, then keep the fastest of a few runs."""

    def run_ms(iterations: int) -> float:
        # This thread's CPU time, not wall time: on a shared machine the thread may be
        # preempted mid-run, and counting that time would make every requested ms too short.
        start = time.thread_time()
        spin(iterations, 0)
        return (time.thread_time() - start) * 1000

    iterations = CALIBRATION_START_ITERATIONS
    while (elapsed_ms := run_ms(iterations)) < CALIBRATION_MIN_MS:
        iterations *= 2
    best_ms = min([elapsed_ms] + [run_ms(iterations) for _ in range(CALIBRATION_RUNS - 1)])
    return Calibration(
        iterations_per_ms=iterations / best_ms,
        sample_iterations=iterations,
        sample_ms=round(best_ms, 3),
        runs=CALIBRATION_RUNS,
        pid=os.getpid(),
        workers=workers,
        start_method=START_METHOD,
    )


def _start_worker(server_pid: int) -> None:
    """The pool's initializer: leave Ctrl-C to the server, and exit when the server is gone.

    A Ctrl-C reaches the whole process group; the workers leave it to the server, whose
    lifespan shuts the pool down in order, instead of each dying with a traceback. A server
    killed outright (SIGKILL) runs no shutdown: a worker, child of the fork server and not of
    the server, would wait for work forever, holding the fork server's "alive" pipe and the
    resource tracker's open. So each worker watches the server's PID (a pidfd, readable once
    it has exited) and exits with it; the fork server and the tracker then see their pipes
    close and exit on their own (docs/architecture.md, "Owning the process tree").
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pidfd = os.pidfd_open(server_pid)
    except ProcessLookupError:
        os._exit(1)  # already gone

    def watch() -> None:
        select.select([pidfd], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="watch-server", daemon=True).start()


@dataclass(frozen=True)
class CpuResources:
    """The calibration and the process pool, created in the pair's lifespan."""

    calibration: Calibration
    executor: ProcessPoolExecutor


def _resources(request: Request) -> CpuResources:
    resources: CpuResources = request.app.state.cpu_pair
    return resources


Cpu = Annotated[CpuResources, Depends(_resources)]


@pair.lifespan
@contextlib.asynccontextmanager
async def process_pool(app: FastAPI) -> AsyncIterator[None]:
    """Calibrate, start the worker processes, and shut them down at app shutdown."""
    async with _cpu_resources() as resources:
        app.state.cpu_pair = resources
        yield


@contextlib.asynccontextmanager
async def _cpu_resources() -> AsyncIterator[CpuResources]:
    """The calibration and a started process pool, shut down when the block exits (the app's
    lifespan and the micro suite's setup share it)."""
    loop = asyncio.get_running_loop()
    # Calibrate in a thread while the pool starts, not before it: the start is a second or
    # more (the fork server is a fresh interpreter that imports this module) that the calling
    # thread spends waiting on a pipe, GIL released. The calibration counts its own thread's
    # CPU time, so neither that wait nor the fork server's import on another core (or
    # preempting it on this one) enters its figure; the started workers are idle.
    calibrating = loop.run_in_executor(None, calibrate, PROCESS_WORKERS)
    context = multiprocessing.get_context(START_METHOD)
    # Imported once in the fork server, so each worker is forked with it already loaded.
    context.set_forkserver_preload([__name__])
    executor = ProcessPoolExecutor(
        max_workers=PROCESS_WORKERS,
        mp_context=context,
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )
    try:
        # Start every worker now (they start lazily, one per waiting task), so the first
        # measured request does not pay for a process start, and a broken pool fails startup.
        await asyncio.gather(
            *(loop.run_in_executor(executor, spin, 1, 0) for _ in range(PROCESS_WORKERS))
        )
        yield CpuResources(await calibrating, executor)
    finally:
        # Blocking is fine here: uvicorn has finished in-flight requests before shutdown, and
        # waiting is what guarantees no worker outlives the server.
        executor.shutdown(wait=True, cancel_futures=True)


def _reply(ms: int, iterations: int, result: int) -> dict[str, int]:
    return {"ms": ms, "iterations": iterations, "result": result}


# The micro benchmark (docs/architecture.md, "The micro suite"): the CPU work inline against a
# process pool round trip, no HTTP. One call alone: what offloading costs, not what it buys
# under load (the bystander's latency shows that).
MICRO_MS = 10


@pair.micro_setup
def _micro_resources(on: MicroServers) -> contextlib.AbstractAsyncContextManager[CpuResources]:
    return _cpu_resources()


@pair.micro("inline", knob=MICRO_MS)
async def _micro_inline(on: MicroServers) -> Any:
    return await inline(MICRO_MS, on.resource)


@pair.micro("process", knob=MICRO_MS)
async def _micro_process(on: MicroServers) -> Any:
    return await process(MICRO_MS, on.resource)


# The workshop exercise (docs/architecture.md, "Exercises"): move the work off the event loop.
pair.exercise(
    reference="process",
    task="""Return the same result as `inline` (the same `spin` of
    cpu.calibration.iterations(ms) iterations, as _reply builds it), but keep the event
    loop free while the work runs, so the cheap /cpu/ping beside it is not kept waiting:
    run `spin` in the process pool cpu.executor (a thread does not help: the GIL).""",
    knob=50,
    min_ratio=5.0,
    shows=[
        Shows(
            "loop_lag_seconds_sum",
            "the event loop is still blocked while the work runs",
            at_most=20,
        )
    ],
    order=40,  # the workshop's order (docs/workshop.md)
)
