"""Postgres and Redis for a run: given by the user, already up (`services up`), or started now.

`provide()` is what a run uses: it yields endpoints and stops, on every exit path, exactly the
servers it started itself. `up()`/`down()`/`status()` back the `pairbench services` command; the
servers they start outlive the command and are recorded in `services.json` in the state folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pairbench.errors import InfrastructureError, UsageError

from . import catalogue, postgres, procs, redis_server

STATE_FILE = "services.json"


def redis_database(url: str, number: int) -> str:
    """The same Redis server's logical database `number` (the gate's baseline uses 1)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{number}"))


def state_dir() -> Path:
    """Where clusters, logs and the services file live (PAIRBENCH_STATE_DIR overrides)."""
    configured = os.environ.get("PAIRBENCH_STATE_DIR")
    if configured:
        path = Path(configured)
    elif os.geteuid() == 0:
        # As root the server runs as another user, which cannot enter /root: use a shared place.
        path = Path(tempfile.gettempdir()) / "pairbench-root"
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "pairbench"
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        path.chmod(0o711)  # the unprivileged postgres user must be able to enter, not list
    return path


@dataclass
class Endpoints:
    """How to reach the two servers, and what to record about them."""

    pg_dsn: str
    redis_url: str
    pg_source: str  # embedded | system | dsn | services-up
    redis_source: str
    started: list[Any] = field(default_factory=list)  # servers this process must stop
    startup_seconds: float | None = None


@dataclass
class ServiceOptions:
    """What the user asked for (flags or environment)."""

    pg_dsn: str | None = None
    redis_url: str | None = None
    pg_bin: str | None = None
    redis_bin: str | None = None
    # Where each given value came from, for messages: {"pg_dsn": "--pg-dsn"} or the variable.
    origins: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **flags: str | None) -> ServiceOptions:
        """Flags win over PAIRBENCH_PG_DSN / PAIRBENCH_REDIS_URL / PAIRBENCH_PG_BIN."""
        values: dict[str, str | None] = {}
        origins: dict[str, str] = {}
        for name, variable in _ENVIRONMENT.items():
            if flags.get(name):
                values[name], origins[name] = flags[name], "--" + name.replace("_", "-")
            elif os.environ.get(variable):
                values[name], origins[name] = os.environ[variable], variable
        return cls(**values, origins=origins)

    def origin(self, name: str) -> str:
        """Where the value of `name` came from ("--pg-dsn", "PAIRBENCH_PG_DSN")."""
        return self.origins.get(name, "--" + name.replace("_", "-"))


_ENVIRONMENT = {
    "pg_dsn": "PAIRBENCH_PG_DSN",
    "redis_url": "PAIRBENCH_REDIS_URL",
    "pg_bin": "PAIRBENCH_PG_BIN",
    "redis_bin": "PAIRBENCH_REDIS_BIN",
}
REACH_TIMEOUT_S = 3.0  # how long a given server may take to accept a TCP connection
REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Address:
    """Where a given server listens: a host and port, or a Unix socket's path."""

    component: str  # "PostgreSQL", "Redis"
    origin: str  # "--pg-dsn", "PAIRBENCH_PG_DSN"
    host: str | None = None
    port: int = 0
    socket: str | None = None

    def __str__(self) -> str:
        return self.socket or f"{self.host}:{self.port}"


def pg_address(dsn: str, origin: str) -> Address | None:
    """Parse a PostgreSQL DSN (URL or key=value); a usage error naming `origin` when malformed.

    None when it names no host (libpq's default socket): nothing to probe beforehand.
    """
    from psycopg import conninfo

    try:
        params = conninfo.conninfo_to_dict(dsn)
    except Exception as e:  # psycopg.ProgrammingError: libpq could not parse it
        reason = (str(e).strip().splitlines() or ["not a connection string"])[0]
        raise UsageError(
            f"{origin}: not a PostgreSQL DSN ({reason}); expected"
            " postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from e
    host = str(params.get("host") or params.get("hostaddr") or "").split(",")[0]
    try:
        port = int(str(params.get("port") or 5432).split(",")[0])
    except ValueError as e:
        raise UsageError(f"{origin}: port {params.get('port')!r} is not a number") from e
    if not 0 < port < 65536:
        raise UsageError(f"{origin}: port {port} is not between 1 and 65535")
    if not host:
        return None
    if host.startswith("/"):
        return Address("PostgreSQL", origin, socket=f"{host}/.s.PGSQL.{port}")
    return Address("PostgreSQL", origin, host, port)


def redis_address(url: str, origin: str) -> Address:
    """Parse a Redis URL; a usage error naming `origin` when malformed."""
    expected = "expected redis://HOST:PORT/DB, rediss://... or unix:///path/to/socket"
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise UsageError(f"{origin}: {redact_url(url)} is not a Redis URL ({expected})")
    if parts.scheme == "unix":
        if not parts.path:
            raise UsageError(f"{origin}: {redact_url(url)} names no socket ({expected})")
        return Address("Redis", origin, socket=parts.path)
    try:
        port = parts.port or 6379
    except ValueError as e:
        raise UsageError(
            f"{origin}: {redact_url(url)}: the port is not a number ({expected})"
        ) from e
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise UsageError(
            f"{origin}: {redact_url(url)}: database {database!r} is not a number ({expected})"
        )
    return Address("Redis", origin, parts.hostname or "localhost", port)


def redact_url(url: str) -> str:
    """`url` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def reach(address: Address, timeout: float = REACH_TIMEOUT_S) -> None:
    """Open and close a connection to `address`; an infrastructure error naming it if that fails."""
    import socket

    where = f"{address.component} at {address} (from {address.origin})"
    if address.socket is not None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(address.socket)
            except OSError as e:
                raise InfrastructureError(f"{where}: cannot connect ({e.strerror or e})") from e
        return
    assert address.host is not None
    try:
        found = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        # No such name is the address given wrong (exit 2, as for `pairbench worker --master`);
        # a resolver that fails for now is the infrastructure (exit 3).
        error = UsageError if e.errno == socket.EAI_NONAME else InfrastructureError
        raise error(f"{where}: name {address.host!r} does not resolve ({e.strerror})") from e
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in found:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(sockaddr)
                return
            except ConnectionRefusedError as e:
                last = e
            except TimeoutError as e:
                raise InfrastructureError(f"{where} did not answer within {timeout:g} s") from e
            except OSError as e:
                last = e
    if isinstance(last, ConnectionRefusedError):
        raise InfrastructureError(f"{where} refused the connection")
    reason = last.strerror if last is not None and last.strerror else str(last)
    raise InfrastructureError(f"{where} cannot be reached ({reason})")


def parse_given(options: ServiceOptions) -> list[Address]:
    """The addresses of the servers the user gave, parsed (usage errors for malformed ones)."""
    found: list[Address] = []
    if options.pg_dsn:
        pg = pg_address(options.pg_dsn, options.origin("pg_dsn"))
        if pg is not None:
            found.append(pg)
    if options.redis_url:
        found.append(redis_address(options.redis_url, options.origin("redis_url")))
    for name in ("pg_bin", "redis_bin"):
        given = getattr(options, name)
        if given and not Path(given).exists():
            raise UsageError(f"{options.origin(name)}: {given} does not exist")
    return found


def check_given(options: ServiceOptions) -> None:
    """Parse (exit 2) and reach (exit 3, a short timeout) the servers the user gave.

    Run before anything starts, so a typo in a DSN is one line naming it, not a failure after
    the embedded servers and the target came up.
    """
    for address in parse_given(options):
        reach(address)


def _read_state(folder: Path) -> dict[str, Any]:
    path = folder / STATE_FILE
    if not path.exists():
        return {}
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{path}: not valid JSON ({e.msg}); remove it if no server is running"
        ) from e
    # Drop entries whose process is gone (a reboot, a kill): they are stale, not running.
    return {k: v for k, v in state.items() if procs.pid_alive(int(v.get("pid", -1)))}


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    path = folder / STATE_FILE
    if not state:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, path)


def every_pair_connections() -> int:
    """max_connections enough for any described pair (the targets' `describe`, a subprocess)."""
    described = catalogue.describe()
    return postgres.needed_connections(described.max_connections(list(described.pairs)))


def _check_connections(dsn: str, source: str, needed: int, where: str = "PostgreSQL") -> None:
    """A server pairbench did not start now must allow the connections the pairs declare.

    It is not restarted: `--pg-dsn` names a server that is not ours to restart, and one of
    `services up` may be serving another run right now; one line says what to do instead.
    """
    have = postgres.max_connections(dsn, where)
    if have < needed:
        fix = (
            "run `pairbench services down` then `pairbench services up` to restart it"
            if source == "services-up"
            else "raise it on that server, or let pairbench start its own (no --pg-dsn)"
        )
        raise InfrastructureError(
            f"PostgreSQL ({source}) has max_connections {have}; the pairs need {needed}: {fix}"
        )


@contextlib.contextmanager
def provide(options: ServiceOptions, connections: int | None = None) -> Iterator[Endpoints]:
    """Endpoints for a run; servers started here are stopped when the block exits, however.

    `connections` is the max_connections the run's pairs need (postgres.needed_connections);
    None: what every described pair needs.
    """
    if connections is None:
        connections = every_pair_connections()
    check_given(options)
    folder = state_dir()
    running = _read_state(folder)
    started: list[Any] = []
    t0 = time.perf_counter()
    try:
        if options.pg_dsn:
            pg_dsn, pg_source = options.pg_dsn, "dsn"
            given = pg_address(pg_dsn, options.origin("pg_dsn"))
            where = (
                f"PostgreSQL at {given or 'the default socket'} (from {options.origin('pg_dsn')})"
            )
            _check_connections(pg_dsn, pg_source, connections, where)
        elif "postgres" in running:
            pg_dsn, pg_source = running["postgres"]["dsn"], "services-up"
            _check_connections(
                pg_dsn, pg_source, connections, "PostgreSQL (from `pairbench services up`)"
            )
        else:
            pg = postgres.start(folder, pg_bin=options.pg_bin, connections=connections)
            started.append(pg)
            pg_dsn, pg_source = pg.dsn, pg.source
        if options.redis_url:
            redis_url, redis_source = options.redis_url, "url"
        elif "redis" in running:
            redis_url, redis_source = running["redis"]["url"], "services-up"
        else:
            rs = redis_server.start(folder, redis_bin=options.redis_bin)
            started.append(rs)
            redis_url, redis_source = rs.url, rs.source
        seconds = time.perf_counter() - t0 if started else None
        yield Endpoints(pg_dsn, redis_url, pg_source, redis_source, started, seconds)
    finally:
        with procs.deferred_interrupts():
            for server in reversed(started):
                server.stop()


def up(
    options: ServiceOptions, connections: int | None = None
) -> tuple[dict[str, Any], float, list[str]]:
    """Start whichever of the two is not running yet; they outlive this process.

    They may serve any pair later, so by default PostgreSQL allows what every described pair
    needs (the targets' `describe`, run as a subprocess). Returns the state, the seconds spent
    and the names of the servers that were already running (reused, not started).
    """
    check_given(options)
    folder = state_dir()
    state = _read_state(folder)
    reused: list[str] = [name for name in ("postgres", "redis") if name in state]
    t0 = time.perf_counter()
    if "postgres" not in state and not options.pg_dsn:
        if connections is None:
            connections = every_pair_connections()
        pg = postgres.start(
            folder, pg_bin=options.pg_bin, die_with_parent=False, connections=connections
        )
        state["postgres"] = {
            "pid": pg.pid,
            "port": pg.port,
            "dsn": pg.dsn,
            "source": pg.source,
            "log": str(pg.log),
            "data": str(pg.data_dir),
        }
        _write_state(folder, state)
    if "redis" not in state and not options.redis_url:
        rs = redis_server.start(folder, redis_bin=options.redis_bin, die_with_parent=False)
        state["redis"] = {
            "pid": rs.pid,
            "port": rs.port,
            "url": rs.url,
            "source": rs.source,
            "log": str(rs.log),
            "data": str(folder / "redis"),
        }
        _write_state(folder, state)
    return state, time.perf_counter() - t0, reused


def down() -> list[str]:
    """Stop the servers `up` started; returns what was stopped."""
    import signal

    folder = state_dir()
    state = _read_state(folder)
    stopped = []
    if "redis" in state:
        procs.stop_pid(int(state["redis"]["pid"]))
        stopped.append(f"redis (pid {state['redis']['pid']})")
    if "postgres" in state:
        procs.stop_pid(int(state["postgres"]["pid"]), signal.SIGINT)
        stopped.append(f"postgres (pid {state['postgres']['pid']})")
    _write_state(folder, {})
    return stopped


def status() -> dict[str, Any]:
    """What `up` started and is still running."""
    return _read_state(state_dir())
