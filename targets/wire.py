"""Response bytes on the wire: an ASGI middleware counting every body byte the app sends.

It is the app's outermost counting layer, so a body compressed inside the app (by a handler,
or by a middleware added before this one) is counted compressed, as it goes on the wire; the
headers are not counted.

The harness's own endpoints (/metrics, /pairs, /_pairbench/...) are left out: a scrape must not
count itself into the trial it measures.
"""

from __future__ import annotations

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNCOUNTED_PREFIXES = ("/metrics", "/pairs", "/_pairbench/")


class ResponseBytesMiddleware:
    """Add the length of every http.response.body chunk to a counter."""

    def __init__(self, app: ASGIApp, counter: Counter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNCOUNTED_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                self.counter.inc(len(message.get("body", b"")))
            await send(message)

        await self.app(scope, receive, counting_send)
