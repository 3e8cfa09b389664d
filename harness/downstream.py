"""The downstream service for a run: started like PostgreSQL and Redis, ended on every exit path.

Pairs whose handlers call another service over HTTPS (the describe document's
`server.downstream`) need one that the harness owns: harness/downstream_app.py under uvicorn in
its own process, on 127.0.0.1 and a free port, with TLS from a certificate authority made at
start (trustme). The target learns the URL and the CA's file from PAIRBENCH_DOWNSTREAM_URL and
PAIRBENCH_DOWNSTREAM_CA, as it learns PostgreSQL's DSN (docs/architecture.md, "The downstream
service").
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import httpx

from pairbench.errors import InfrastructureError

from . import procs

URL_ENV = "PAIRBENCH_DOWNSTREAM_URL"
CA_ENV = "PAIRBENCH_DOWNSTREAM_CA"
APP_MODULE = "pairbench.harness.downstream_app"
START_TIMEOUT_S = 20.0
HEALTH_TIMEOUT_S = 1.0
POLL_S = 0.05
# Calls served at once before the rest wait: a small service. A quick run's few users stay
# below it; calls left hanging (scenarios/http_client_timeouts.toml) or a wide fan-out reach it.
DEFAULT_CONCURRENCY = 8
DEFAULT_HANG_S = 0.8  # how long a hanging call holds on when its caller never gives up
# Longer than the clients' keep-alive expiry (targets/downstream.py): the client, not the
# server, closes an idle connection, so a request never races the server's close.
KEEP_ALIVE_S = 75.0
HOSTNAME = "127.0.0.1"
# /configure waits for the service to be idle (harness/downstream_app.py, CONFIGURE_WAIT_S):
# the client waits longer than it does.
CONFIGURE_TIMEOUT_S = 10.0

OverLimit = Literal["queue", "reject"]


@dataclass(frozen=True)
class DownstreamSettings:
    """How the downstream behaves (recorded in run.json's metadata.downstream)."""

    concurrency: int = DEFAULT_CONCURRENCY
    over_limit: OverLimit = "queue"
    hang_seconds: float = DEFAULT_HANG_S
    keep_alive_seconds: float = KEEP_ALIVE_S

    def argv(self) -> list[str]:
        """The service's command-line flags for these settings."""
        return [
            "--concurrency",
            str(self.concurrency),
            "--over-limit",
            self.over_limit,
            "--hang-seconds",
            f"{self.hang_seconds:g}",
            "--keep-alive-seconds",
            f"{self.keep_alive_seconds:g}",
        ]


@dataclass
class RunningDownstream:
    """A downstream service we started."""

    url: str
    ca: Path  # the certificate authority's PEM: what a client verifies the service with
    pid: int
    log: Path
    settings: DownstreamSettings
    popen: subprocess.Popen[bytes]
    folder: Path  # its certificate and key, removed when it stops

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM (uvicorn drops a hung call after a second), then remove its key."""
        try:
            procs.stop_pid(self.pid, popen=self.popen)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """What the target reads to reach it."""
        return {URL_ENV: self.url, CA_ENV: str(self.ca)}

    def describe(self) -> dict[str, Any]:
        """For the run's metadata."""
        return {"url": self.url, "tls": "trustme CA made at start", **asdict(self.settings)}

    def configure(self, concurrency: int, over_limit: OverLimit) -> DownstreamSettings:
        """New settings for the calls that follow (a scenario's [downstream] table), applied
        by the running service: its URL and CA, which the target was started with, stay."""
        try:
            with self.client(CONFIGURE_TIMEOUT_S) as client:
                response = client.post(
                    "/configure", params={"concurrency": concurrency, "over_limit": over_limit}
                )
        except httpx.HTTPError as e:
            raise InfrastructureError(f"downstream service: POST /configure: {e}") from e
        if response.status_code != httpx.codes.OK:
            raise InfrastructureError(
                f"downstream service: POST /configure -> {response.status_code}:"
                f" {response.text[:200]}"
            )
        self.settings = replace(self.settings, concurrency=concurrency, over_limit=over_limit)
        return self.settings

    def client(self, timeout: float = HEALTH_TIMEOUT_S) -> httpx.Client:
        """A client that trusts the service's CA (the caller closes it)."""
        return httpx.Client(base_url=self.url, verify=trust(self.ca), timeout=timeout)


def trust(ca: Path) -> ssl.SSLContext:
    """A TLS context that trusts exactly the downstream's CA."""
    return ssl.create_default_context(cafile=str(ca))


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A fresh CA and a certificate it issues for 127.0.0.1: (ca, cert, key) files."""
    import trustme

    authority = trustme.CA()
    issued = authority.issue_cert(HOSTNAME, "localhost")
    ca, cert, key = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    authority.cert_pem.write_to_path(str(ca))
    issued.private_key_pem.write_to_path(str(key))
    for i, pem in enumerate(issued.cert_chain_pems):
        pem.write_to_path(str(cert), append=i > 0)
    return ca, cert, key


def start(
    state_dir: Path,
    log: Path,
    settings: DownstreamSettings | None = None,
    *,
    interpreter: procs.Interpreter = procs.CURRENT,
) -> RunningDownstream:
    """Make its certificate, start it and wait until /healthz answers over TLS."""
    settings = settings or DownstreamSettings()
    if settings.concurrency < 1:
        raise InfrastructureError(f"downstream concurrency {settings.concurrency} is below 1")
    parent = state_dir / "downstream"
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="tls-", dir=parent))
    port = procs.free_port(HOSTNAME)
    try:
        ca, cert, key = _certificates(folder)
        argv = [
            *interpreter.module(APP_MODULE),
            "--host",
            HOSTNAME,
            "--port",
            str(port),
            "--certfile",
            str(cert),
            "--keyfile",
            str(key),
            *settings.argv(),
        ]
        popen = procs.spawn(argv, log=log, env=interpreter.environ(), cwd=interpreter.cwd)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    service = RunningDownstream(
        f"https://{HOSTNAME}:{port}", ca, popen.pid, log, settings, popen, folder
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        with service.client() as client:
            while time.monotonic() < deadline:
                if not service.alive():
                    tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                    raise InfrastructureError(
                        f"downstream service exited while starting: {' '.join(tail)}"
                    )
                try:
                    if client.get("/healthz").status_code == httpx.codes.OK:
                        return service
                except httpx.TransportError:
                    pass
                time.sleep(POLL_S)
        raise InfrastructureError(
            f"downstream service not healthy after {START_TIMEOUT_S:.0f} s; log: {log}"
        )
    except BaseException:
        service.stop()
        raise


@contextlib.contextmanager
def provide(
    needed: bool, state_dir: Path, log: Path, settings: DownstreamSettings | None = None
) -> Iterator[RunningDownstream | None]:
    """The service for the block when `needed` (None otherwise), stopped however it ends."""
    if not needed:
        yield None
        return
    service = start(state_dir, log, settings)
    try:
        yield service
    finally:
        with procs.deferred_interrupts():
            service.stop()
