"""The job worker for a run: started like the downstream service, ended on every exit path.

Pairs whose jobs run outside the web process (the describe document's `server.worker`: a job
queue's consumers) need a worker process that the harness owns:
`python -m pairbench.targets.worker` in its own session, with the target's environment (the same
PostgreSQL DSN, Redis URL and downstream URL and CA), watched while the run uses it and stopped
after the target (docs/architecture.md, "The job worker").
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pairbench.errors import InfrastructureError

from . import procs

WORKER_MODULE = "pairbench.targets.worker"
START_TIMEOUT_S = 20.0
POLL_S = 0.05


@dataclass
class RunningWorker:
    """A job worker we started."""

    pid: int
    log: Path
    argv: list[str]
    popen: subprocess.Popen[bytes]
    folder: Path  # its ready file, removed when it stops

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM: the worker puts the jobs it was running back in their queue and exits."""
        try:
            procs.stop_pid(self.pid, popen=self.popen)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        """For the run's metadata."""
        return {"pid": self.pid, "argv": self.argv[1:], "log": str(self.log)}


def start(
    pairs: list[str],
    pg_dsn: str,
    redis_url: str,
    state_dir: Path,
    log: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    interpreter: procs.Interpreter = procs.CURRENT,
) -> RunningWorker:
    """Start the worker for `pairs` with the target's environment; wait until their jobs run."""
    parent = state_dir / "worker"
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=parent))
    ready = folder / "ready"
    argv = [*interpreter.module(WORKER_MODULE), "--ready", str(ready), *pairs]
    env = interpreter.environ(
        {**(extra_env or {}), "PAIRBENCH_PG_DSN": pg_dsn, "PAIRBENCH_REDIS_URL": redis_url}
    )
    try:
        popen = procs.spawn(argv, log=log, env=env, cwd=interpreter.cwd)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    worker = RunningWorker(popen.pid, log, argv, popen, folder)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if ready.exists():
                return worker
            if not worker.alive():
                tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                raise InfrastructureError(f"job worker exited while starting: {' '.join(tail)}")
            time.sleep(POLL_S)
        raise InfrastructureError(f"job worker not ready after {START_TIMEOUT_S:.0f} s; log: {log}")
    except BaseException:
        worker.stop()
        raise


@contextlib.contextmanager
def provide(
    pairs: list[str],
    pg_dsn: str,
    redis_url: str,
    state_dir: Path,
    log: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    interpreter: procs.Interpreter = procs.CURRENT,
) -> Iterator[RunningWorker | None]:
    """The worker for the block when a pair needs it (None otherwise), stopped however it ends;
    `interpreter`: whose code it runs (a gate's baseline runs its own)."""
    if not pairs:
        yield None
        return
    worker = start(pairs, pg_dsn, redis_url, state_dir, log, extra_env, interpreter=interpreter)
    try:
        yield worker
    finally:
        with procs.deferred_interrupts():
            worker.stop()
