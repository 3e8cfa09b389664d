"""Endpoints with known behaviour, to prove the harness measures what it claims.

`/probe/sleep?ms=d` answers after d ms without blocking the loop: under an open load well below
capacity its median latency must be d. `/probe/stall?ms=d` answers at once, except that the
first request after `/probe/stall/arm` blocks the whole event loop for d ms, as a GC pause or a
synchronous call would: every request in flight or arriving meanwhile waits. Coordinated
omission hides exactly this from a closed-loop measurement. `/probe/allocate?mb=m` touches m MiB
and frees them before answering: the peak-memory counter must show them, and forget them at the
next `/metrics?reset_peak=1`. `/probe/bytes?n=k` answers with a body of exactly k bytes, which
the response-bytes counter must count.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query, Response

from .openapi import OctetStreamResponse

MAX_SLEEP_MS = 10_000
MAX_STALL_MS = 5_000
MAX_ALLOCATE_MB = 512
PAGE_BYTES = 4096  # one write per page makes the kernel back the whole buffer with memory
MIB = 1 << 20
MAX_BODY_BYTES = 16 * MIB

router = APIRouter(prefix="/probe", tags=["probe"])
_armed: dict[str, float] = {}


@router.get("/sleep")
async def sleep(ms: Annotated[float, Query(ge=0, le=MAX_SLEEP_MS)]) -> dict[str, float]:
    """Answer after `ms` milliseconds, yielding the event loop meanwhile."""
    await asyncio.sleep(ms / 1000.0)
    return {"slept_ms": ms}


@router.get("/stall/arm")
async def arm(ms: Annotated[float, Query(gt=0, le=MAX_STALL_MS)]) -> dict[str, float]:
    """The next /probe/stall request blocks the event loop for `ms`."""
    _armed["ms"] = ms
    return {"armed_ms": ms}


@router.get("/stall")
async def stall() -> dict[str, float]:
    """Immediate, unless armed: then block the loop (deliberately synchronous) once."""
    ms = _armed.pop("ms", 0.0)
    if ms:
        time.sleep(ms / 1000.0)  # the point: freeze the loop, as a GC pause would
    return {"stalled_ms": ms}


@router.get("/allocate")
async def allocate(mb: Annotated[int, Query(ge=1, le=MAX_ALLOCATE_MB)]) -> dict[str, int]:
    """Touch `mb` MiB, then free them: resident memory peaks and falls back."""
    # A buffer this large is mmap'ed by the allocator, so freeing it returns it to the kernel.
    buffer = bytearray(mb * MIB)
    for offset in range(0, len(buffer), PAGE_BYTES):
        buffer[offset] = 1
    touched = len(buffer)
    del buffer
    return {"allocated_mb": touched // MIB}


@router.get("/bytes", response_class=OctetStreamResponse)
async def body_bytes(n: Annotated[int, Query(ge=0, le=MAX_BODY_BYTES)]) -> Response:
    """A body of exactly `n` bytes."""
    return OctetStreamResponse(b"x" * n)
