"""The downstream service's own process: a small TLS API the target's handlers call.

`python -m pairbench.harness.downstream_app --port P --certfile F --keyfile K ...` serves it
under uvicorn; harness/downstream.py starts it, with a certificate made at start, and ends it
(docs/architecture.md, "The downstream service"). It is a plain ASGI callable, no framework: it
stands for someone else's API, and the less it does per call the more of a pair's latency is the
pair's own.

- `GET /work?ms=D&id=I`: `{"id": I, "ms": D}` after D ms (0..MAX_WORK_MS). `&hang=1`: the call
  hangs, as a stuck upstream does: it answers only after `--hang-seconds`, or never when the
  caller gives up first (closes its connection, which frees the call's slot at once).
- At most `--concurrency` calls of /work run at once; beyond it a call waits for a slot
  (`--over-limit queue`) or is refused with 503 (`reject`).
- `GET /stats`: connections accepted, calls served, calls in flight and waiting now, their
  peaks, calls refused and calls that hung. Counts only grow (read them as deltas, like every
  counter of the harness); `?reset=1` starts a new window for the peaks after reading them.
- `GET /release`: every call hanging now answers at once (between two trials: a trial never
  inherits the calls an earlier one left hanging).
- `POST /configure?concurrency=C&over_limit=queue|reject`: new settings for the calls that
  follow (a scenario's `[downstream]` table, applied by the runner before its pair). It first
  answers every hanging call, then waits up to CONFIGURE_WAIT_S for the service to be idle, so
  no call runs under the old limit while the new one counts; still busy: 409.
- `GET /healthz`.

Connections are counted exactly by a uvicorn protocol hook (`CountingProtocol`): the protocol's
`connection_made` runs once per accepted TCP connection (after its TLS handshake). A connection
counts when it carries its first request other than /stats: the target reads /stats at every
scrape of its /metrics, and that reader's own connections are not the lesson. Counting the
client's (host, port) pairs seen would miss a port the kernel hands out again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_WORK_MS = 10_000  # the longest /work call: a bounded input, as every pair's
MAX_ID = 2**31 - 1
OVER_LIMIT = ("queue", "reject")
REJECT_STATUS = 503  # over the concurrency limit with --over-limit reject
GRACEFUL_SHUTDOWN_S = 1.0  # a hung call must not hold up the process's exit
STATS_PATH = "/stats"
MAX_CONCURRENCY = 10_000  # a bounded input: /configure's concurrency
CONFIGURE_WAIT_S = 3.0  # longer than a hang (harness/downstream.py, DEFAULT_HANG_S)
CONFIGURE_POLL_S = 0.01
BUSY_STATUS = 409

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Peer = tuple[str, int]


@dataclass
class Stats:
    """What /stats reports (see the module docstring)."""

    connections: int = 0
    calls: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    waiting: int = 0
    peak_waiting: int = 0
    # The most calls open at once, served or queued: what callers sent and have not been
    # answered (a wide fan-out's width, when the service queues).
    peak_open: int = 0
    rejected: int = 0
    hung: int = 0
    # Connections accepted that have carried no counted request yet, by peer address.
    fresh: set[Peer] = field(default_factory=set)

    def document(self) -> dict[str, int]:
        """The counts, without the bookkeeping."""
        return {k: v for k, v in asdict(self).items() if k != "fresh"}

    def reset_peaks(self) -> None:
        """A new window for the peaks: they start again from what is running now."""
        self.peak_in_flight, self.peak_waiting = self.in_flight, self.waiting
        self.peak_open = self.in_flight + self.waiting

    def opened(self) -> None:
        """After a call starts waiting or is served: the peaks follow."""
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self.peak_waiting = max(self.peak_waiting, self.waiting)
        self.peak_open = max(self.peak_open, self.in_flight + self.waiting)


STATS = Stats()  # one process serves one downstream


class CountingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, telling `STATS` of every connection it accepts."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if peer:
            STATS.fresh.add((str(peer[0]), int(peer[1])))

    def connection_lost(self, exc: Exception | None) -> None:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        if peer:
            STATS.fresh.discard((str(peer[0]), int(peer[1])))
        super().connection_lost(exc)


@dataclass
class Settings:
    """How the service behaves; the harness records them in the run's metadata."""

    concurrency: int
    over_limit: str  # "queue" | "reject"
    hang_seconds: float


class InputError(ValueError):
    """A bad query parameter: answered 400 with one line naming it."""


def _int_param(query: dict[str, list[str]], name: str, low: int, high: int, default: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[0])
    except ValueError:
        raise InputError(f"{name}={values[0]!r} is not a whole number") from None
    if not low <= value <= high:
        raise InputError(f"{name}={value} is not between {low} and {high}")
    return value


async def _reply(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(data)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _caller_left(receive: Receive, seconds: float, released: asyncio.Event) -> bool:
    """Wait up to `seconds`, or until `released` is set; True as soon as the caller closes its
    connection."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    left = asyncio.ensure_future(disconnected())
    freed = asyncio.ensure_future(released.wait())
    try:
        await asyncio.wait([left, freed], timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (left, freed):
            task.cancel()
    return left.done() and not left.cancelled() and left.exception() is None


class Downstream:
    """The ASGI app: /work, /stats, /healthz."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slots = asyncio.Semaphore(settings.concurrency)
        # Set by /release: every call hanging now answers (a new event for later hangs).
        self.released = asyncio.Event()
        self.hanging = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if path != STATS_PATH:
            peer = scope.get("client")
            if peer and (peer[0], peer[1]) in STATS.fresh:
                STATS.fresh.discard((peer[0], peer[1]))
                STATS.connections += 1
        try:
            if path == "/work":
                await self.work(query, receive, send)
            elif path == STATS_PATH:
                document = STATS.document()
                if _int_param(query, "reset", 0, 1, 0):
                    STATS.reset_peaks()
                await _reply(send, 200, {**document, **asdict(self.settings)})
            elif path == "/release":
                hanging = self.hanging
                self.released.set()
                self.released = asyncio.Event()
                await _reply(send, 200, {"released": hanging})
            elif path == "/configure":
                await self.configure(scope, query, send)
            elif path == "/healthz":
                await _reply(send, 200, {"status": "ok"})
            else:
                await _reply(send, 404, {"detail": f"no such path {path}"})
        except InputError as e:
            await _reply(send, 400, {"detail": str(e)})

    async def work(self, query: dict[str, list[str]], receive: Receive, send: Send) -> None:
        """One call: wait for a slot (or be refused), then D ms of 'work', or a hang."""
        ms = _int_param(query, "ms", 0, MAX_WORK_MS, 0)
        ident = _int_param(query, "id", 0, MAX_ID, 0)
        hang = bool(_int_param(query, "hang", 0, 1, 0))
        slots = self.slots  # the call releases the semaphore it took, whatever /configure does
        if self.settings.over_limit == "reject" and slots.locked():
            STATS.rejected += 1
            await _reply(send, REJECT_STATUS, {"detail": "over the concurrency limit"})
            return
        if slots.locked():  # every slot taken: this call queues
            STATS.waiting += 1
            STATS.opened()
            try:
                await slots.acquire()
            finally:
                STATS.waiting -= 1
        else:
            await slots.acquire()  # a free slot: taken at once, without yielding
        STATS.in_flight += 1
        STATS.opened()
        try:
            if hang:
                STATS.hung += 1
                self.hanging += 1
                try:
                    left = await _caller_left(receive, self.settings.hang_seconds, self.released)
                finally:
                    self.hanging -= 1
                if left:
                    return  # nobody to answer: the slot is free again at once
            elif ms:
                await asyncio.sleep(ms / 1000)
        finally:
            STATS.in_flight -= 1
            slots.release()
        STATS.calls += 1
        await _reply(send, 200, {"id": ident, "ms": ms})

    async def configure(self, scope: Scope, query: dict[str, list[str]], send: Send) -> None:
        """New concurrency and over-limit behaviour, once no call is open (see the module
        docstring); the settings now in force are the answer."""
        if scope.get("method") != "POST":
            await _reply(send, 405, {"detail": "/configure takes POST"})
            return
        concurrency = _int_param(
            query, "concurrency", 1, MAX_CONCURRENCY, self.settings.concurrency
        )
        over_limit = query.get("over_limit", [self.settings.over_limit])[0]
        if over_limit not in OVER_LIMIT:
            raise InputError(f"over_limit={over_limit!r} is not one of {', '.join(OVER_LIMIT)}")
        self.released.set()  # hanging calls answer now: an earlier trial's leftovers
        self.released = asyncio.Event()
        deadline = asyncio.get_running_loop().time() + CONFIGURE_WAIT_S
        while STATS.in_flight + STATS.waiting:
            if asyncio.get_running_loop().time() > deadline:
                await _reply(
                    send,
                    BUSY_STATUS,
                    {
                        "detail": f"busy: {STATS.in_flight} calls in flight and {STATS.waiting}"
                        f" waiting after {CONFIGURE_WAIT_S:g} s"
                    },
                )
                return
            await asyncio.sleep(CONFIGURE_POLL_S)
        self.settings.concurrency, self.settings.over_limit = concurrency, over_limit
        self.slots = asyncio.Semaphore(concurrency)
        await _reply(send, 200, asdict(self.settings))


def main(argv: list[str] | None = None) -> None:
    """Serve the downstream on 127.0.0.1 over TLS until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="pairbench.harness.downstream_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--certfile", required=True)
    parser.add_argument("--keyfile", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--over-limit", choices=OVER_LIMIT, required=True)
    parser.add_argument("--hang-seconds", type=float, required=True)
    parser.add_argument("--keep-alive-seconds", type=float, required=True)
    args = parser.parse_args(argv)
    settings = Settings(args.concurrency, args.over_limit, args.hang_seconds)
    config = uvicorn.Config(
        Downstream(settings),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=CountingProtocol,
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
        timeout_keep_alive=int(args.keep_alive_seconds),
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
        lifespan="off",  # nothing to open or close
        access_log=False,
        log_level="warning",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main(sys.argv[1:])
