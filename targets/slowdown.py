"""An injected slowdown of chosen variants, to test the regression gate against a known effect.

Off by default. `PAIRBENCH_SLOWDOWN=PAIR/VARIANT=PCT[,PAIR/VARIANT=PCT...]` (PCT `20%` or `20`,
0 < PCT <= 1000) makes each named variant's responses later by PCT percent of the time the app
took to start them: `SlowdownMiddleware` measures from the request's arrival to the response
start, then awaits `fraction * elapsed` before passing the start on (an async sleep: other
requests are served meanwhile). Slowed responses carry `X-Pairbench-Slowdown: <seconds>` and the
injected time is counted on /metrics. A slowed target is for tests only, so the app refuses it
unless PAIRBENCH_BIND_HOST (set by whoever starts uvicorn) is a loopback address
(docs/architecture.md, "Injected slowdown (testing the gate)").
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import os
import time
from collections.abc import Collection, Mapping

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .registry import Pair

SLOWDOWN_ENV = "PAIRBENCH_SLOWDOWN"
BIND_HOST_ENV = "PAIRBENCH_BIND_HOST"
HEADER = b"x-pairbench-slowdown"
MAX_PERCENT = 1000.0
LOCALHOST = "localhost"


class SlowdownError(ValueError):
    """A slowdown that cannot be applied; the message names the bad entry or setting."""


def parse(
    spec: str, variants: Mapping[str, Collection[str]], source: str = SLOWDOWN_ENV
) -> dict[str, float]:
    """`PAIR/VARIANT=PCT,...` as {"pair/variant": fraction}; `variants` maps pair -> variant names.

    An empty spec is no slowdown. `source` names the setting in error messages.
    """
    slowed: dict[str, float] = {}
    if not spec.strip():
        return slowed
    for raw in spec.split(","):
        entry = raw.strip()
        try:
            key, fraction = _entry(entry, variants)
            if key in slowed:
                raise ValueError(f"{key} is slowed twice")
        except ValueError as e:
            raise SlowdownError(f"{source}: {entry!r}: {e}") from None
        slowed[key] = fraction
    return slowed


def _entry(entry: str, variants: Mapping[str, Collection[str]]) -> tuple[str, float]:
    """One `PAIR/VARIANT=PCT` as ("pair/variant", fraction); ValueError says what is wrong."""
    if not entry:
        raise ValueError("empty entry (expected PAIR/VARIANT=PCT)")
    target, equals, percent = entry.partition("=")
    if not equals:
        raise ValueError("expected PAIR/VARIANT=PCT (PCT like 20% or 20)")
    pair, slash, variant = (part.strip() for part in target.partition("/"))
    if not slash or not pair or not variant or "/" in variant:
        raise ValueError("expected PAIR/VARIANT before '='")
    text = percent.strip().removesuffix("%").strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"PCT {percent.strip()!r} is not a number") from None
    if not math.isfinite(value) or not 0 < value <= MAX_PERCENT:
        raise ValueError(f"PCT must be > 0 and <= {MAX_PERCENT:g} (percent), not {text}")
    if pair not in variants:
        raise ValueError(f"unknown pair {pair!r} (known: {', '.join(sorted(variants)) or 'none'})")
    if variant not in variants[pair]:
        raise ValueError(
            f"pair {pair!r} has no variant {variant!r} (variants: {', '.join(variants[pair])})"
        )
    return f"{pair}/{variant}", value / 100


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost (an IPv6 address may be in brackets)."""
    name = host.strip().removeprefix("[").removesuffix("]")
    if name.lower() == LOCALHOST:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def from_env(
    pairs: Mapping[str, Pair], environ: Mapping[str, str] = os.environ
) -> dict[str, float]:
    """The slowdown PAIRBENCH_SLOWDOWN asks for ({} when unset), checked against the pairs."""
    variants = {name: list(pair.variants) for name, pair in pairs.items()}
    return parse(environ.get(SLOWDOWN_ENV, ""), variants)


def require_loopback(environ: Mapping[str, str] = os.environ) -> None:
    """Refuse a slowdown unless PAIRBENCH_BIND_HOST says the server binds to loopback."""
    host = environ.get(BIND_HOST_ENV, "").strip()
    if not host:
        raise SlowdownError(
            f"{SLOWDOWN_ENV} is set but {BIND_HOST_ENV} is not: set it to the address the server"
            " binds (a slowed target serves on loopback only)"
        )
    if not is_loopback(host):
        raise SlowdownError(
            f"{SLOWDOWN_ENV} is set but the server binds to {host} ({BIND_HOST_ENV}): a slowed"
            " target serves on loopback only (127.0.0.1, ::1, localhost)"
        )


class SlowdownMiddleware:
    """Delay the response start of slowed variants by a fraction of the time taken to reach it."""

    def __init__(
        self, app: ASGIApp, paths: Mapping[str, tuple[str, str, float]], counter: Counter
    ) -> None:
        """`paths`: exact request path -> (pair, variant, fraction); `counter`: labelled by both."""
        self.app = app
        self.paths = dict(paths)
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        slowed = self.paths.get(scope["path"]) if scope["type"] == "http" else None
        if slowed is None:
            await self.app(scope, receive, send)
            return
        pair, variant, fraction = slowed
        counted = self.counter.labels(pair=pair, variant=variant)
        arrived = time.perf_counter()

        async def delayed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                injected = fraction * (time.perf_counter() - arrived)
                await asyncio.sleep(injected)
                counted.inc(injected)
                header = (HEADER, f"{injected:.6f}".encode())
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, delayed_send)
