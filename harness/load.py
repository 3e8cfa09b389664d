"""The orchestrator's side of the load generator: start the agent, send trials, read replies."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pairbench.errors import InfrastructureError, UsageError

from . import procs

READY_TIMEOUT_S = 60.0
REPLY_GRACE_S = 30.0  # beyond warm-up + duration: stopping users, fetching /metrics


AGENT_MODULE = "pairbench.harness.agent"


def get_step(path: str) -> dict[str, Any]:
    """The concrete step of a plain GET of `path` expecting 200 (harness/request.py's shape)."""
    return {
        "method": "GET",
        "path": path,
        "headers": {},
        "body": None,
        "status": 200,
        "carry": {},
        "once": False,
        "measure": True,
    }


def worker_argv(host: str | None, master: str) -> list[str]:
    """The command of one locust worker serving the master at `master` (HOST:PORT).

    `host`: the target it loads; None loads the one the master names, which only a worker in
    the master's network namespace reaches (docs/distributed.md)."""
    target = ["--host", host] if host else []
    return [sys.executable, "-m", AGENT_MODULE, "--mode", "worker", *target, "--master", master]


MASTER_WAIT_S = 30.0  # how long `pairbench worker` waits for its master to answer
PROBE_INTERVAL_S = 0.5


def master_address(master: str) -> tuple[str, int]:
    """HOST and PORT of `--master HOST:PORT`; a UsageError naming what is wrong."""
    host, sep, port_text = master.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise UsageError(f"--master {master}: expected HOST:PORT")
    try:
        port = int(port_text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise UsageError(f"--master {master}: the port must be a number from 1 to 65535")
    return host, port


def target_url(url: str) -> str:
    """The `--host` URL of a worker's target, checked: http(s) with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--host {url}: expected the target's base URL, e.g. http://HOST:8000")
    return url


def wait_for_master(master: str, timeout: float = MASTER_WAIT_S) -> None:
    """Check that the master's address resolves (else a UsageError) and that something accepts
    TCP connections there within `timeout` seconds (else an InfrastructureError)."""
    host, port = master_address(master)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        # As services.reach: no such name is exit 2, a resolver failing for now exit 3.
        error = UsageError if e.errno == socket.EAI_NONAME else InfrastructureError
        raise error(f"--master {master}: the host {host} does not resolve ({e.strerror})") from e
    deadline = time.monotonic() + timeout
    reason = "no answer"
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=max(0.1, min(left, 2.0))):
                return
        except OSError as e:
            reason = e.strerror or type(e).__name__
        if time.monotonic() + PROBE_INTERVAL_S > deadline:
            raise InfrastructureError(
                f"no locust master answers at {host}:{port} (--master) after {timeout:g} s: "
                f"{reason}; is `pairbench run --remote-workers` running there?"
            )
        time.sleep(PROBE_INTERVAL_S)


class LoadAgent:
    """One locust process serving trials; stopped by `close()` on every exit path."""

    def __init__(
        self,
        host: str,
        log: Path,
        processes: int = 1,
        remote_workers: int = 0,
        bind: str = "127.0.0.1",
        port: int = 0,
        *,
        wait: bool = True,
    ) -> None:
        """One process (`processes` 1, no remote workers), else a locust master with workers.

        `wait=False` returns once it is spawned; `wait_ready` (or the first trial) waits."""
        self.log = log
        argv = [sys.executable, "-m", AGENT_MODULE, "--host", host]
        if processes > 1 or remote_workers:
            argv += [
                "--mode",
                "master",
                "--workers",
                str(processes if processes > 1 else 0),
                "--remote-workers",
                str(remote_workers),
                "--bind",
                bind,
                "--port",
                str(port),
                "--log",
                str(log),
            ]
        self.spawned = time.perf_counter()
        self.popen = procs.spawn(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            log=log,
        )
        # Watched until close(): a run that loses it says so (docs/architecture.md, "Owning
        # the process tree").
        self._watch = contextlib.ExitStack()
        self._watch.enter_context(procs.watched("the load generator (locust)", self.popen, log))
        self._version: str | None = None
        self.ready_s = 0.0  # from spawn to its hello
        self.waited_s = 0.0  # how long the caller waited for the hello
        # A master's workers as its hello names them (host, address, target), else None.
        self.workers: list[dict[str, Any]] | None = None
        if wait:
            self.wait_ready()

    def wait_ready(self) -> str:
        """Wait for the agent's hello (it imports locust meanwhile); its locust version.

        Spawning does not wait, so a run starts the agent early and overlaps its start-up with
        work that measures nothing (verification): docs/architecture.md, "Measurement protocol".
        """
        if self._version is None:
            waiting = time.perf_counter()
            hello = self._read(READY_TIMEOUT_S)
            if not hello.get("ready"):
                self.close()
                raise InfrastructureError(f"load agent did not start: {hello.get('error', hello)}")
            now = time.perf_counter()
            self.ready_s, self.waited_s = now - self.spawned, now - waiting
            self._version = str(hello.get("locust", "?"))
            self.workers = hello.get("workers")
        return self._version

    @property
    def locust_version(self) -> str:
        return self.wait_ready()

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.popen.stdout is not None
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        line = self.popen.stdout.readline() if ready else b""
        if not line:
            dead = procs.dead_watched(grace=procs.BLAME_GRACE_S)
            self.close()
            if dead is not None:
                raise procs.ProcessDied(dead)
            tail = (
                self.log.read_text(errors="replace").strip().splitlines()[-1:]
                if self.log.exists()
                else []
            )
            raise InfrastructureError(
                f"load agent stopped answering ({' '.join(tail) or 'no output'}); log: {self.log}"
            )
        reply: dict[str, Any] = json.loads(line)
        return reply

    def trial(
        self,
        steps: list[dict[str, Any]] | str,
        users: int,
        warmup_s: float,
        duration_s: float,
        metrics_url: str | None = None,
        keys: dict[str, Any] | None = None,
        bystander: dict[str, Any] | None = None,
        rate: float | None = None,
        think_s: float = 0.0,
        metrics_before_url: str | None = None,
        ttfb: bool = False,
        meanwhile: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Run one measurement window and return the agent's raw reply.

        `meanwhile` runs once the command is sent, while the agent starts its users and warms
        up: the caller's short bookkeeping (saving run.json) overlaps the unmeasured warm-up.

        `steps` are the variant's concrete requests (harness/request.py). `keys` ({count,
        exponent, seed}) fills `{key}` per request from a Zipf distribution; `bystander` ({path,
        users, rate}) loads a cheap endpoint alongside, recorded apart (paced at `rate` req/s
        when given). With `rate` the open model
        runs: `users` connections share a fixed arrival rate. `metrics_url` is scraped after
        the window, `metrics_before_url` (default: the same) before it: a peak counter's
        window starts there. `ttfb` records time to first byte beside full latency.
        """
        self.wait_ready()
        assert self.popen.stdin is not None
        if isinstance(steps, str):  # a bare path: one GET expecting 200
            steps = [get_step(steps)]
        command = {
            "op": "trial",
            "steps": steps,
            "ttfb": ttfb,
            "metrics_before_url": metrics_before_url,
            "users": users,
            "warmup_s": warmup_s,
            "duration_s": duration_s,
            "metrics_url": metrics_url,
            "keys": keys,
            "bystander": bystander,
            "model": "open" if rate is not None else "closed",
            "rate": rate,
            "think_s": think_s,
        }
        self.popen.stdin.write((json.dumps(command) + "\n").encode())
        self.popen.stdin.flush()
        if meanwhile is not None:
            meanwhile()
        reply = self._read(warmup_s + duration_s + REPLY_GRACE_S)
        if "error" in reply:
            procs.check_watched()  # a dead server is the cause, not what the agent saw of it
            error = str(reply["error"])
            where = "" if "log: " in error else f"; log: {self.log}"
            raise InfrastructureError(f"load agent failed a trial: {error}{where}")
        return reply

    def close(self) -> None:
        """Ask the agent to quit; stop it (and its process group) by PID if it does not."""
        watch: contextlib.ExitStack | None = getattr(self, "_watch", None)
        if watch is not None:
            watch.close()
        if self.popen.poll() is None and self.popen.stdin is not None:
            try:
                self.popen.stdin.write(b'{"op": "quit"}\n')
                self.popen.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            procs._wait(self.popen.pid, 5.0, self.popen)
        procs.stop_pid(self.popen.pid, popen=self.popen)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
