"""Fault-test pair that calls the harness's downstream service (tests/faults/test_downstream.py).

Loaded through PAIRBENCH_PAIRS by that test only: declaring `ServerNeeds(downstream=True)` makes
a run start the service, whose process must end with the run on every exit path.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import Depends, Query

from pairbench.targets import downstream
from pairbench.targets.downstream import Downstream
from pairbench.targets.registry import Knob, Pair, ServerNeeds

pair = Pair(
    name="fault_downstream",
    title="A downstream call per request",
    summary="ms milliseconds at the downstream service, through a new or a shared client.",
    knob=Knob("ms", "milliseconds at the service", "ms"),
    counters=["downstream_calls"],
    server=ServerNeeds(downstream=True),
)

Ms = Annotated[int, Query(ge=0, le=100, description="milliseconds at the service")]
Service = Annotated[Downstream, Depends(downstream.of)]


async def _call(service: Downstream, ms: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=service.url, verify=service.trust()) as client:
        result: dict[str, Any] = (await client.get("/work", params={"ms": ms})).json()
    return result


@pair.variant("bad")
async def fresh(service: Service, ms: Ms) -> dict[str, Any]:
    """A new client for the call."""
    return await _call(service, ms)


@pair.variant("good")
async def again(service: Service, ms: Ms) -> dict[str, Any]:
    """The same call (the test is about processes, not speed)."""
    return await _call(service, ms)
