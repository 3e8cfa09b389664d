"""Fault-test pair with jobs in the harness's job worker (tests/faults/test_worker.py).

Loaded through PAIRBENCH_PAIRS by that test only: declaring `ServerNeeds(worker=True)` makes a
run start the worker process, which must end with the run on every exit path.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Query

from pairbench.targets.registry import Knob, Pair, ServerNeeds

pair = Pair(
    name="fault_worker",
    title="A request beside a job worker",
    summary="ms milliseconds of sleep; the worker runs beside the server and does nothing.",
    knob=Knob("ms", "milliseconds asleep", "ms"),
    counters=[],
    server=ServerNeeds(worker=True),
)

Ms = Annotated[int, Query(ge=0, le=100, description="milliseconds asleep")]


@pair.variant("bad")
async def slow(ms: Ms) -> dict[str, Any]:
    """Sleep ms, then answer."""
    await asyncio.sleep(ms / 1000)
    return {"ms": ms}


@pair.variant("good")
async def fast(ms: Ms) -> dict[str, Any]:
    """Answer at once."""
    return {"ms": ms}


@pair.worker
async def idle(settings: Any) -> None:
    """The worker's part: wait until cancelled, as a queue's worker waits for jobs."""
    await asyncio.Event().wait()
