"""EXPLAIN for verification: which access paths did a request's statements take?

A request carrying `X-Pairbench-Explain: 1` records every statement its handler ran (the
asyncpg query logger appends to RECORDING, a context variable set for that request only). When
the handler is done, and before the last body chunk is sent (so the plans are ready by the time
the client reads the response), each statement is EXPLAINed with its own arguments on the
introspection connection, and `GET /_pairbench/plans` returns the access paths of that last
explained request: `[{"sql": ..., "access": ["Index Scan on books", ...]}]`.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .introspect import Introspection

HEADER = b"x-pairbench-explain"
MAX_STATEMENTS = 1000  # a 1+N request at the largest N stays whole; a runaway one is cut off

Statement = tuple[str, tuple[Any, ...]]
RECORDING: ContextVar[list[Statement] | None] = ContextVar("pairbench_explain", default=None)


def access_paths(plan: Any) -> list[str]:
    """'Node Type on relation' for every plan node that reads a relation, depth first."""
    found: list[str] = []
    if plan is None:  # a statement without a plan (BEGIN, SET, ...)
        return found

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node:
            found.append(f"{node['Node Type']} on {node['Relation Name']}")
        for child in node.get("Plans", []):
            walk(child)

    for entry in plan if isinstance(plan, list) else [plan]:
        walk(entry["Plan"])
    return found


class ExplainMiddleware:
    """Record the statements of requests that ask for it, and EXPLAIN them after the handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (HEADER, b"1") not in scope["headers"]:
            await self.app(scope, receive, send)
            return
        recorded: list[Statement] = []
        token = RECORDING.set(recorded)
        state = scope["app"].state

        async def send_after_explaining(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # Query loggers run via call_soon: one turn of the loop lets the last one land.
                await asyncio.sleep(0)
                introspection: Introspection = state.introspection
                plans = await introspection.explain(recorded)
                state.plans = [
                    {"sql": sql, "access": access_paths(plan)}
                    for (sql, _), plan in zip(recorded, plans, strict=True)
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_after_explaining)
        finally:
            RECORDING.reset(token)
