"""A link emulator: a shaping TCP proxy in its own process, with a bandwidth limit and a delay.

Loopback has no bandwidth limit and no round trip worth the name, so a pattern that only pays
off across a network (compression, fewer round trips to the database) would show the opposite
of the truth. A scenario declares a link (`[link.client]`, `[link.db]`: mbit, rtt_ms) and the
run puts one of these proxies in the path (docs/architecture.md, "The link emulator").

Per direction, a token bucket (rate `mbit`, a burst of BURST_BYTES) decides when a chunk leaves,
and a delay line adds half the round trip to it: the chunk is stamped with its departure plus the
delay and written when that time comes, while the reader goes on reading. So the delay does not
limit throughput (it is a pipe of the delay's length, not stop-and-wait). The bucket belongs to
the link, not to a connection: connections through one link share its bandwidth, as on a wire.

Threads, not asyncio: asyncio's timers (and uvloop's) wake to the millisecond, and a 0.25 ms
delay must stay 0.25 ms; `time.sleep` waits to tens of microseconds. Each connection has a reader
and a writer thread per direction; they block in system calls, which release the GIL.

The process reads commands on stdin, one a line, and answers on stdout (`set mbit=10
rtt_ms=1`, `stats`); the harness changes the round trip between knob values without a restart
(`Link.set`). It exits when stdin closes, or on SIGTERM.

`python -m pairbench.harness.link --port P --upstream HOST:PORT [--mbit M] [--rtt-ms R]`
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import ctypes.util
import dataclasses
import json
import os
import queue
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import psutil

from pairbench.errors import InfrastructureError, UsageError

from . import procs

if TYPE_CHECKING:  # the proxy process itself needs neither psycopg nor the server module
    from . import server

BURST_BYTES = 4096  # the token bucket's depth: a few packets of a 1500-byte MTU
UNLIMITED_READ_BYTES = 65536  # what one read takes when no bandwidth limit applies
QUEUE_CHUNKS = 4096  # chunks in flight per direction of a connection before the reader waits
START_TIMEOUT_S = 10.0
REPLY_TIMEOUT_S = 5.0  # for an answer on the control pipe
SWITCH_INTERVAL_S = 0.0002  # the GIL handoff: a waking writer must not wait 5 ms for it
LATENESS_STEP_S = 0.000002  # how fast _Waker's estimate of the wake-up lateness moves
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value when Python lacks it
MAX_STAMP_AGE_S = 0.05  # a kernel receive time stamp older than this is not believed
LATENESS_KEPT = 2000  # delayed chunks whose lateness `stats` summarises
MAX_EARLY_S = 0.0002  # the most a sleep is cut short by
TIMER_SLACK_NS = 1  # see _precise_sleeps
_PR_SET_TIMERSLACK = 29
MAX_MBIT = 100_000.0
MAX_RTT_MS = 10_000.0
_EOF = b""


@dataclass(frozen=True)
class Shape:
    """What a link does to the bytes: a bandwidth (None: unlimited) and an added round trip."""

    mbit: float | None = None
    rtt_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.mbit is not None and not 0 < self.mbit <= MAX_MBIT:
            raise UsageError(f"link mbit {self.mbit:g}: must be above 0 and at most {MAX_MBIT:g}")
        if not 0 <= self.rtt_ms <= MAX_RTT_MS:
            raise UsageError(f"link rtt_ms {self.rtt_ms:g}: must be 0 to {MAX_RTT_MS:g}")

    def describe(self) -> str:
        """ "10 Mbit/s, 1 ms RTT", "unlimited, 0.5 ms RTT": how captions name the link."""
        rate = "unlimited" if self.mbit is None else f"{self.mbit:g} Mbit/s"
        return f"{rate}, {self.rtt_ms:g} ms RTT"

    def record(self) -> dict[str, Any]:
        """For run.json (docs/run-format.md, `metadata.links`)."""
        return {"mbit": self.mbit, "rtt_ms": self.rtt_ms, "burst_bytes": BURST_BYTES}


# ---------------------------------------------------------------------------------------------
# The proxy (runs in its own process)


class _Bucket:
    """One direction of the link: a token bucket shared by every connection through it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.empty_at = 0.0  # the time at which the bucket was (or will be) empty

    def departure(self, size: int, bytes_per_s: float | None, now: float) -> float:
        """When `size` bytes may leave, and take their tokens (virtual-clock token bucket)."""
        if bytes_per_s is None:
            return now
        with self.lock:
            # A bucket idle long enough is full: never more than BURST_BYTES of credit.
            self.empty_at = max(self.empty_at, now - BURST_BYTES / bytes_per_s)
            self.empty_at += size / bytes_per_s
            return max(now, self.empty_at)


@dataclass
class _Proxy:
    """The listening side and the state its connection threads share."""

    listener: socket.socket
    upstream: tuple[str, int]
    shape: Shape
    buckets: tuple[_Bucket, _Bucket] = field(default_factory=lambda: (_Bucket(), _Bucket()))
    bytes_moved: list[int] = field(default_factory=lambda: [0, 0])  # up (to upstream), down
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # How late (s, negative: early) the last delayed chunks were written, for `stats`.
    lateness: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=LATENESS_KEPT)
    )

    def accept_forever(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # the listener was closed: the process is ending
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream)
        except OSError as e:
            print(f"link: cannot reach upstream {self.upstream}: {e}", file=sys.stderr, flush=True)
            client.close()
            return
        for s in (client, server):
            # Small messages (a query, a row) must not wait for Nagle's algorithm.
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)  # see _receive
        with self.lock:
            self.connections += 1
        pair = _Connection(client, server)
        for index, (source, sink) in enumerate(((client, server), (server, client))):
            line = _DelayLine()
            threading.Thread(
                target=self._read, args=(pair, source, sink, line, index), daemon=True
            ).start()
            threading.Thread(
                target=self._write, args=(pair, sink, line, index), daemon=True
            ).start()

    def _read(
        self,
        pair: _Connection,
        source: socket.socket,
        sink: socket.socket,
        line: _DelayLine,
        index: int,
    ) -> None:
        """Read, wait for the bucket's tokens, stamp with the delivery time, hand to the writer.

        With no delay and nothing in the line the reader writes the chunk itself: the hand-off
        to a waking writer costs some tens of microseconds, which a delay absorbs (the writer is
        awake before the chunk is due) but a zero delay would not, so the proxy's own cost would
        not cancel between 0 ms and 1 ms.
        """
        bucket = self.buckets[index]
        waker = _Waker()
        try:
            while True:
                shape = self.shape  # read once per chunk: a `set` applies from the next one
                rate = None if shape.mbit is None else shape.mbit * 1e6 / 8
                data, now = _receive(source, UNLIMITED_READ_BYTES if rate is None else BURST_BYTES)
                leaves = bucket.departure(len(data), rate, now) if data else now
                waker.sleep_until(leaves)  # the shaping holds the reader: TCP pushes back upstream
                if shape.rtt_ms == 0 and line.idle():
                    self._deliver(pair, sink, data, index)
                else:
                    line.put(leaves + shape.rtt_ms / 2000, data)
                if not data:
                    return
        except OSError:
            line.put(0.0, _EOF)
            pair.close()

    def _write(
        self,
        pair: _Connection,
        sink: socket.socket,
        line: _DelayLine,
        index: int,
    ) -> None:
        """Deliver each chunk at its time: the delay line."""
        waker = _Waker()
        try:
            while True:
                due, data = line.get()
                waker.sleep_until(due)
                if data:  # a failed reader's end (due 0) is no delivery time to summarise
                    self.lateness.append(time.perf_counter() - due)
                self._deliver(pair, sink, data, index)
                line.done()
                if not data:
                    return
        except OSError:
            pair.close()

    def _deliver(self, pair: _Connection, sink: socket.socket, data: bytes, index: int) -> None:
        if not data:  # the sender closed its side: pass the half-close on
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            pair.half_closed()
            return
        sink.sendall(data)
        with self.lock:
            self.bytes_moved[index] += len(data)

    def stats(self) -> dict[str, Any]:
        late = sorted(self.lateness)
        with self.lock:
            return {
                "connections": self.connections,
                "bytes_up": self.bytes_moved[0],
                "bytes_down": self.bytes_moved[1],
                "late_us_p50": round(late[len(late) // 2] * 1e6, 1) if late else None,
                "late_us_p90": round(late[len(late) * 9 // 10] * 1e6, 1) if late else None,
            }


_TIMESPEC = struct.Struct("@ll")


def _receive(source: socket.socket, size: int) -> tuple[bytes, float]:
    """Up to `size` bytes and when the kernel received them, on the perf_counter clock.

    The kernel's own time stamp (SO_TIMESTAMPNS), not the time the reading thread woke: after
    an idle millisecond that wake-up is some tens of microseconds late, and a delay counted from
    it would be that much longer than asked.
    """
    data, ancillary, _, _ = source.recvmsg(size, _TIMESPEC.size * 2)
    now = time.perf_counter()
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(value)
            ago = time.time() - (seconds + nanoseconds * 1e-9)
            if 0 <= ago < MAX_STAMP_AGE_S:  # a clock step must not throw the delay off
                return data, now - ago
    return data, now


class _DelayLine:
    """Chunks stamped with their delivery time, in order, and how many are not yet written."""

    def __init__(self) -> None:
        self.chunks: queue.Queue[tuple[float, bytes]] = queue.Queue(QUEUE_CHUNKS)
        self.pending = 0  # put and not yet written: written by the reader only when 0
        self.lock = threading.Lock()

    def put(self, due: float, data: bytes) -> None:
        with self.lock:
            self.pending += 1
        self.chunks.put((due, data))

    def get(self) -> tuple[float, bytes]:
        return self.chunks.get()

    def done(self) -> None:
        with self.lock:
            self.pending -= 1

    def idle(self) -> bool:
        """Nothing waits to be written, so the reader may write without overtaking a chunk."""
        with self.lock:
            return self.pending == 0


class _Connection:
    """Both sockets of one proxied connection: closed when both directions ended or one failed."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.sockets = (client, server)
        self.open_directions = 2
        self.lock = threading.Lock()

    def half_closed(self) -> None:
        with self.lock:
            self.open_directions -= 1
            done = self.open_directions == 0
        if done:
            self.close()

    def close(self) -> None:
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


class _Waker:
    """Sleeps that end on time: a thread woken from `time.sleep` runs some tens of microseconds
    late on a busy machine (the scheduler, the GIL), which would add to every delayed chunk.
    Each wake-up's lateness is measured and the next sleep ends early by an estimate of its
    median (a step up when late, a step down when early: robust to the long tail of a stalled
    core), instead of spinning, which would hold the GIL the other threads wait for."""

    def __init__(self) -> None:
        self.early = 0.0  # seconds a sleep is cut short by

    def sleep_until(self, when: float) -> None:
        now = time.perf_counter()
        if now >= when:
            return  # due already (the chunk came late): nothing learnt about sleeping
        wait = when - now - self.early
        if wait > 0:
            time.sleep(wait)
        late = time.perf_counter() - when  # negative: woke (or did not sleep) before `when`
        step = LATENESS_STEP_S if late > 0 else -LATENESS_STEP_S
        self.early = min(MAX_EARLY_S, max(0.0, self.early + step))


def _parse_settings(words: list[str], shape: Shape) -> Shape:
    """`mbit=10 rtt_ms=1` (mbit=none: unlimited) applied to `shape`."""
    values: dict[str, Any] = {"mbit": shape.mbit, "rtt_ms": shape.rtt_ms}
    for word in words:
        key, _, value = word.partition("=")
        if key == "mbit":
            values["mbit"] = None if value in ("", "none") else float(value)
        elif key == "rtt_ms":
            values["rtt_ms"] = float(value)
        else:
            raise ValueError(f"unknown setting {key!r}")
    return Shape(**values)


def _precise_sleeps() -> None:
    """Let `time.sleep` wake on time: Linux delays a sleeper's wake-up by up to its timer slack
    (50 us by default) to batch wake-ups, twice per round trip here. Threads inherit it."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_TIMERSLACK, TIMER_SLACK_NS)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def _serve(port: int, upstream: tuple[str, int], shape: Shape) -> None:
    _precise_sleeps()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(512)
    proxy = _Proxy(listener, upstream, shape)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    threading.Thread(target=proxy.accept_forever, daemon=True).start()
    print(f"ready {json.dumps(proxy.shape.record())}", flush=True)
    try:
        for raw in sys.stdin:  # the harness's commands; EOF: the harness is gone
            words = raw.split()
            if not words:
                continue
            try:
                if words[0] == "set":
                    proxy.shape = _parse_settings(words[1:], proxy.shape)
                    print(f"ok {json.dumps(proxy.shape.record())}", flush=True)
                elif words[0] == "stats":
                    print(f"ok {json.dumps(proxy.stats())}", flush=True)
                else:
                    print(f"error unknown command {words[0]!r}", flush=True)
            except (ValueError, UsageError) as e:
                print(f"error {e}", flush=True)
    finally:
        listener.close()


def main(argv: list[str] | None = None) -> None:
    """The proxy process's entry point."""
    parser = argparse.ArgumentParser(prog="python -m pairbench.harness.link")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="HOST:PORT")
    parser.add_argument("--mbit", type=float, default=None)
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    _serve(args.port, (host, int(port)), Shape(args.mbit, args.rtt_ms))


# ---------------------------------------------------------------------------------------------
# The harness's side: start, change, read and stop a proxy


@dataclass
class Link:
    """A running proxy: connect to `port` on 127.0.0.1 to reach `upstream` across the link."""

    name: str  # "client" or "db"
    shape: Shape
    upstream: tuple[str, int]
    port: int
    log: Path
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def set(self, shape: Shape) -> None:
        """Change bandwidth and round trip; applies to every connection from its next chunk."""
        mbit = "none" if shape.mbit is None else f"{shape.mbit!r}"
        self._command(f"set mbit={mbit} rtt_ms={shape.rtt_ms!r}")
        self.shape = shape

    def stats(self) -> dict[str, Any]:
        """Connections and bytes each way so far, and the proxy's CPU seconds (psutil)."""
        counted: dict[str, Any] = json.loads(self._command("stats"))
        times = psutil.Process(self.pid).cpu_times()
        counted["cpu_s"] = round(times.user + times.system, 4)
        return counted

    def record(self) -> dict[str, Any]:
        """The link as run.json keeps it (docs/run-format.md, `metadata.links`)."""
        return {**self.shape.record(), "description": self.shape.describe()}

    def _command(self, text: str) -> str:
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(text.encode() + b"\n")
            self.popen.stdin.flush()
        except OSError as e:
            raise InfrastructureError(self._dead(f"cannot be told {text!r}")) from e
        reply = _read_line(self.popen, REPLY_TIMEOUT_S)
        if reply is None:
            raise InfrastructureError(self._dead(f"did not answer {text!r}"))
        status, _, rest = reply.partition(" ")
        if status != "ok":
            raise InfrastructureError(f"the {self.name} link refused {text!r}: {rest}")
        return rest

    def _dead(self, what: str) -> str:
        code = self.popen.poll()
        ended = f" ({procs.how_it_ended(code)})" if code is not None else ""
        return f"the {self.name} link (pid {self.pid}){ended} {what}; log: {self.log}"

    def stop(self) -> None:
        """Close its stdin (it exits), then stop it by PID like every child (procs.stop_pid)."""
        if self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        procs.stop_pid(self.pid, timeout=2.0, popen=self.popen)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def _read_line(popen: subprocess.Popen[bytes], timeout: float) -> str | None:
    """One line of the proxy's stdout within `timeout`; None if it closed or stayed silent."""
    assert popen.stdout is not None
    fd = popen.stdout.fileno()
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        byte = os.read(fd, 1)  # unbuffered: a buffer would hide lines from select()
        if not byte:
            return None
        line += byte
    return line.decode().strip()


def start(
    name: str, upstream: tuple[str, int], shape: Shape, log: Path, *, port: int | None = None
) -> Link:
    """Start a proxy to `upstream` and wait until it listens; stopped by the caller (`stop`)."""
    port = port or procs.free_port()
    argv = [
        *procs.CURRENT.module("pairbench.harness.link"),
        "--port",
        str(port),
        "--upstream",
        f"{upstream[0]}:{upstream[1]}",
        "--rtt-ms",
        repr(shape.rtt_ms),
    ]
    if shape.mbit is not None:
        argv += ["--mbit", repr(shape.mbit)]
    popen = procs.spawn(
        argv,
        log=log,
        env=procs.CURRENT.environ(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    link = Link(name, shape, upstream, port, log, popen)
    try:
        ready = _read_line(popen, START_TIMEOUT_S)
        if ready is None or not ready.startswith("ready"):
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise InfrastructureError(
                f"the {name} link did not start: {' '.join(tail) or 'no answer'}; log: {log}"
            )
        return link
    except BaseException:
        link.stop()
        raise


# ---------------------------------------------------------------------------------------------
# A pair measured across links: its own target server behind them


@dataclass
class Linked:
    """What a pair with links talks to: a target server whose PostgreSQL and Redis are reached
    through the db link, reached itself through the client link (either may be absent)."""

    target: server.TargetServer  # its `url` is the client link's when there is one
    links: dict[str, Link]  # "client", "postgres", "redis"
    rtt_from_knob: bool = False
    mbit_from_knob: bool = False

    def set_db_rtt(self, rtt_ms: float) -> None:
        """The db links' round trip (the `db_rtt_ms` knob): both PostgreSQL's and Redis's."""
        for name in ("postgres", "redis"):
            if name in self.links:
                link = self.links[name]
                link.set(Shape(link.shape.mbit, rtt_ms))

    def set_client_mbit(self, mbit: float) -> None:
        """The client link's bandwidth (the `client_mbit` knob); MAX_MBIT means unlimited.

        The largest value, so that the unlimited link sorts and plots after every finite one
        (the knob's axis runs from the slowest link to none). Unlimited, not shaped at that
        rate: a shaped link reads BURST_BYTES at a time and wakes per chunk, so even a rate no
        body reaches would cost the proxy CPU per byte that an unlimited link (64 KB reads)
        does not, and that cost would fall on the largest (uncompressed) bodies.
        """
        link = self.links["client"]
        link.set(Shape(None if mbit >= MAX_MBIT else mbit, link.shape.rtt_ms))

    def at_knob(self) -> Callable[[float], None] | None:
        """What to run before each knob value's trials: the knob's setting of a link, if any."""
        if self.rtt_from_knob:
            return self.set_db_rtt
        if self.mbit_from_knob:
            return self.set_client_mbit
        return None

    def record(self) -> dict[str, Any]:
        """run.json's `pairs.<name>.link` (docs/run-format.md)."""
        client = self.links.get("client")
        db = self.links.get("postgres")
        return {
            "client": (
                {**client.shape.record(), "mbit_from_knob": self.mbit_from_knob} if client else None
            ),
            "db": {**db.shape.record(), "rtt_from_knob": self.rtt_from_knob} if db else None,
            "description": self.description(),
            "proxies": {},
        }

    def description(self) -> str:
        """How captions name the conditions: "client link 10 Mbit/s, 1 ms RTT; db link ..."."""
        parts = []
        client = self.links.get("client")
        if client is not None:
            if self.mbit_from_knob:
                parts.append(
                    f"client link bandwidth = the knob ({MAX_MBIT:g}: unlimited),"
                    f" {client.shape.rtt_ms:g} ms RTT"
                )
            else:
                parts.append(f"client link {client.shape.describe()}")
        db = self.links.get("postgres")
        if db is not None:
            if self.rtt_from_knob:
                rate = "unlimited" if db.shape.mbit is None else f"{db.shape.mbit:g} Mbit/s"
                parts.append(f"db link {rate}, RTT = the knob")
            else:
                parts.append(f"db link {db.shape.describe()}")
        return "; ".join(parts)

    def usage(self) -> dict[str, Any]:
        """Each proxy's connections, bytes and CPU seconds so far (`Link.stats`)."""
        return {name: link.stats() for name, link in self.links.items()}


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(address)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _via(url: str, port: int) -> str:
    """`url` with its host and port replaced by the proxy's, its user and password kept."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{user + '@' if user else ''}127.0.0.1:{port}"))


def _pg_upstream(dsn: str) -> tuple[str, int]:
    from psycopg import conninfo

    params = conninfo.conninfo_to_dict(dsn)
    host = str(params.get("host") or "")
    if not host or host.startswith("/"):
        raise UsageError(
            "a [link.db] needs PostgreSQL on TCP (host and port in the DSN), not a Unix socket"
        )
    return host.split(",")[0], int(str(params.get("port") or 5432).split(",")[0])


@contextlib.contextmanager
def serve_through(
    client: Shape | None,
    db: Shape | None,
    pg_dsn: str,
    redis_url: str,
    target: server.TargetServer,
    logs: Path,
    prefix: str,
    *,
    pair: str | None = None,
    rtt_from_knob: bool = False,
    mbit_from_knob: bool = False,
) -> Iterator[Linked]:
    """Start the proxies (and, for a db link, a target server of the pair's own behind them);
    every process started here is watched while the block runs and stopped when it exits."""
    from psycopg import conninfo

    from . import server

    links: dict[str, Link] = {}
    with contextlib.ExitStack() as stack:

        def started(name: str, link: Link, watched_as: str) -> Link:
            stack.callback(link.stop)
            stack.enter_context(procs.watched(watched_as, link.popen, link.log))
            links[name] = link
            return link

        if db is not None:
            pg = started(
                "postgres",
                start("postgres", _pg_upstream(pg_dsn), db, logs / f"{prefix}-link-postgres.log"),
                "the link to PostgreSQL",
            )
            rs = started(
                "redis",
                start("redis", _host_port(redis_url, 6379), db, logs / f"{prefix}-link-redis.log"),
                "the link to Redis",
            )
            dsn = (
                _via(pg_dsn, pg.port)
                if urlsplit(pg_dsn).scheme in ("postgres", "postgresql")
                else conninfo.make_conninfo(pg_dsn, host="127.0.0.1", port=pg.port)
            )
            url = _via(redis_url, rs.port)
            target = server.start(
                dsn,
                url,
                logs / f"{prefix}-linked-server.log",
                pairs=None if pair is None else [pair],
            )
            stack.callback(target.stop)
            stack.enter_context(
                procs.watched("the target server behind the db link", target.popen, target.log)
            )
        if client is not None:
            host, port = _host_port(target.url, 80)
            front = started(
                "client",
                start("client", (host, port), client, logs / f"{prefix}-link-client.log"),
                "the client link",
            )
            target = dataclasses.replace(target, url=f"http://127.0.0.1:{front.port}")
        yield Linked(target, links, rtt_from_knob, mbit_from_knob)


if __name__ == "__main__":
    main()
