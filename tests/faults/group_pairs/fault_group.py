"""Fault-test pair served by the harness's process group (tests/faults/test_group.py).

Loaded through PAIRBENCH_PAIRS by that test only: declaring `ServerNeeds(one_process=...)` makes
a run start the group for the pair's turn, whose members must end with the run on every exit
path.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Query

from pairbench.targets.registry import Knob, Pair, ServerNeeds

pair = Pair(
    name="fault_group",
    title="A request served by one process or by the group",
    summary="ms milliseconds of sleep, on one member's port or the shared one.",
    knob=Knob("ms", "milliseconds asleep", "ms"),
    counters=[],
    server=ServerNeeds(one_process=("alone",)),
)

Ms = Annotated[int, Query(ge=0, le=100, description="milliseconds asleep")]


@pair.variant("bad")
async def alone(ms: Ms) -> dict[str, Any]:
    """Sleep ms on member 0, then answer."""
    await asyncio.sleep(ms / 1000)
    return {"ms": ms}


@pair.variant("good")
async def shared(ms: Ms) -> dict[str, Any]:
    """Sleep ms on whichever member accepted, then answer."""
    await asyncio.sleep(ms / 1000)
    return {"ms": ms}
