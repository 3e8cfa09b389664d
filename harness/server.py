"""The target app under uvicorn, in its own process, on 127.0.0.1 and a free port."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pairbench.errors import InfrastructureError

from . import catalogue, procs

START_TIMEOUT_S = 30.0
HEALTH_TIMEOUT_S = 1.0  # one /healthz request while the server starts
POLL_S = 0.05  # between two of them
# Read by the app (targets/slowdown.py), which the harness never imports.
SLOWDOWN_ENV = "PAIRBENCH_SLOWDOWN"
BIND_HOST_ENV = "PAIRBENCH_BIND_HOST"
# Comma-separated pair names the app serves alone (their routes, resources and counters); unset:
# every registered pair (docs/architecture.md, "Servers and processes").
SERVE_PAIRS_ENV = "PAIRBENCH_SERVE_PAIRS"
# uvloop and httptools: what a production uvicorn deployment runs.
UVICORN_ARGS = [
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
]


@dataclass
class TargetServer:
    """A running targets app."""

    url: str
    pid: int
    log: Path
    argv: list[str]
    popen: Any
    slowdown: dict[str, float] = field(default_factory=dict)  # as /pairs reports it
    # Variants served at another base URL than `url` (the process group's one-process variants,
    # harness/group.py): requests to them name their URL (harness/rounds.py).
    variant_urls: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        return bool(self.popen.poll() is None)

    def stop(self) -> None:
        """SIGTERM: uvicorn finishes in-flight requests and runs the lifespan's shutdown."""
        procs.stop_pid(self.pid, popen=self.popen)

    def describe(self) -> dict[str, Any]:
        """For the run's metadata (`slowdown` only when one is injected)."""
        described: dict[str, Any] = {"url": self.url, "argv": self.argv[1:], "workers": 1}
        if self.slowdown:
            described["slowdown"] = dict(self.slowdown)
        return described


def bind_host() -> str:
    """Where a run's target listens: PAIRBENCH_BIND_HOST when set, else loopback.

    Remote workers need an address they can reach (docs/distributed.md); the app itself still
    refuses a slowdown on anything but loopback (targets/slowdown.py).
    """
    return os.environ.get(BIND_HOST_ENV, "").strip() or "127.0.0.1"


def start(
    pg_dsn: str,
    redis_url: str,
    log: Path,
    host: str = "127.0.0.1",
    extra_env: Mapping[str, str] | None = None,
    interpreter: procs.Interpreter = procs.CURRENT,
    *,
    slowdown: Mapping[str, float] | None = None,
    pairs: Sequence[str] | None = None,
) -> TargetServer:
    """Start uvicorn with the app factory and wait for /healthz (`extra_env`: e.g. PAIRBENCH_PAIRS).

    `slowdown` ({"pair/variant": fraction}) sets PAIRBENCH_SLOWDOWN, replacing an inherited one
    ({} removes it); the app refuses it unless `host` is loopback. `pairs`: serve these alone
    (a run's own pairs: the others' pools and process pools are never opened, about 1 s of
    start-up here); None serves every registered pair.
    """
    port = procs.free_port(host)
    argv = [
        *interpreter.module("uvicorn"),
        "pairbench.targets.app:create_app",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        *UVICORN_ARGS,
    ]
    env = environment(pg_dsn, redis_url, host, extra_env, interpreter)
    if pairs is not None:
        env[SERVE_PAIRS_ENV] = ",".join(pairs)
    if slowdown is not None:
        env.pop(SLOWDOWN_ENV, None)
        if slowdown:
            env[SLOWDOWN_ENV] = ",".join(f"{k}={f * 100:.12g}%" for k, f in slowdown.items())
    popen = procs.spawn(argv, log=log, env=env, cwd=interpreter.cwd)
    server = TargetServer(f"http://{host}:{port}", popen.pid, log, argv, popen)
    try:
        wait_healthy(server.url, server.alive, log, "target server")
        if env.get(SLOWDOWN_ENV):
            server.slowdown = catalogue.fetch(server.url).slowdown
        return server
    except BaseException:
        server.stop()
        raise


def environment(
    pg_dsn: str,
    redis_url: str,
    host: str,
    extra_env: Mapping[str, str] | None = None,
    interpreter: procs.Interpreter = procs.CURRENT,
) -> dict[str, str]:
    """The app's environment: the servers' addresses and its bind host, over `extra_env`
    (shared with the process group's members, harness/group.py)."""
    return interpreter.environ(
        {
            **(extra_env or {}),
            "PAIRBENCH_PG_DSN": pg_dsn,
            "PAIRBENCH_REDIS_URL": redis_url,
            BIND_HOST_ENV: host,
        }
    )


def wait_healthy(url: str, alive: Callable[[], bool], log: Path, what: str) -> None:
    """Poll `url`/healthz until it answers 200; InfrastructureError when the process exits or
    START_TIMEOUT_S passes (the caller stops the process)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    # One client for every poll: httpx.get builds a client, TLS context included, each time
    # (about 17 ms of CPU), which the orchestrator would spend beside the starting server.
    with httpx.Client(timeout=HEALTH_TIMEOUT_S) as client:
        while time.monotonic() < deadline:
            if not alive():
                tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                raise InfrastructureError(f"{what} exited while starting: {' '.join(tail)}")
            try:
                if client.get(url + "/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL_S)
    raise InfrastructureError(f"{what} not healthy after {START_TIMEOUT_S:.0f} s; log: {log}")
