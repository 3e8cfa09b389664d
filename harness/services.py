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

    @classmethod
    def from_env(cls, **flags: str | None) -> ServiceOptions:
        """Flags win over PAIRBENCH_PG_DSN / PAIRBENCH_REDIS_URL / PAIRBENCH_PG_BIN."""
        return cls(
            pg_dsn=flags.get("pg_dsn") or os.environ.get("PAIRBENCH_PG_DSN"),
            redis_url=flags.get("redis_url") or os.environ.get("PAIRBENCH_REDIS_URL"),
            pg_bin=flags.get("pg_bin") or os.environ.get("PAIRBENCH_PG_BIN"),
            redis_bin=flags.get("redis_bin") or os.environ.get("PAIRBENCH_REDIS_BIN"),
        )


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


def _check_connections(dsn: str, source: str, needed: int) -> None:
    """A server pairbench did not start now must allow the connections the pairs declare.

    It is not restarted: `--pg-dsn` names a server that is not ours to restart, and one of
    `services up` may be serving another run right now; one line says what to do instead.
    """
    have = postgres.max_connections(dsn)
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
    folder = state_dir()
    running = _read_state(folder)
    started: list[Any] = []
    t0 = time.perf_counter()
    try:
        if options.pg_dsn:
            pg_dsn, pg_source = options.pg_dsn, "dsn"
            _check_connections(pg_dsn, pg_source, connections)
        elif "postgres" in running:
            pg_dsn, pg_source = running["postgres"]["dsn"], "services-up"
            _check_connections(pg_dsn, pg_source, connections)
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


def up(options: ServiceOptions, connections: int | None = None) -> tuple[dict[str, Any], float]:
    """Start whichever of the two is not running yet; they outlive this process.

    They may serve any pair later, so by default PostgreSQL allows what every described pair
    needs (the targets' `describe`, run as a subprocess).
    """
    folder = state_dir()
    state = _read_state(folder)
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
        }
        _write_state(folder, state)
    return state, time.perf_counter() - t0


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
