"""Real servers for the whole session: the embedded PostgreSQL and Valkey, started once.

Nothing here is mocked (docs/architecture.md: real components, never mocks). The state folder is a fresh
temporary one, so tests never touch a developer's own `pairbench services`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

STATE = Path(tempfile.mkdtemp(prefix="pairbench-tests-"))
STATE.chmod(0o711)  # as root, the unprivileged postgres user must be able to enter it
os.environ["PAIRBENCH_STATE_DIR"] = str(STATE)
for var in ("PAIRBENCH_PG_DSN", "PAIRBENCH_REDIS_URL", "PAIRBENCH_SCENARIOS"):
    os.environ.pop(var, None)

import httpx  # noqa: E402
import psycopg  # noqa: E402

from pairbench.harness import downstream, server, services, worker  # noqa: E402
from pairbench.targets import seeding  # noqa: E402

# Every pair's `test` sizes: small enough to seed all pairs in about a second.
TEST_PROFILE = "test"


@pytest.fixture(scope="session")
def pairbench() -> list[str]:
    """The `pairbench` command, run with this interpreter."""
    return [sys.executable, "-m", "pairbench"]


@pytest.fixture
def isolated_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state folder of the test's own, so the servers it starts are its alone."""
    state = Path(tempfile.mkdtemp(prefix="pairbench-svc-"))
    state.chmod(0o711)  # pytest's tmp folders are 0700: the postgres user could not enter
    monkeypatch.setenv("PAIRBENCH_STATE_DIR", str(state))
    yield state
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def servers() -> Iterator[services.Endpoints]:
    """PostgreSQL and Redis for the session, every pair seeded with its `test` sizes."""
    with services.provide(services.ServiceOptions()) as endpoints:
        asyncio.run(seeding.seed(endpoints.pg_dsn, TEST_PROFILE))
        yield endpoints


@pytest.fixture(scope="session")
def fresh_database(servers: services.Endpoints) -> Callable[[str], str]:
    """Make an empty database on the session's server (dropped first if it exists): its DSN."""

    def make(name: str) -> str:
        base = servers.pg_dsn.rsplit("/", 1)[0]
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{base}/{name}"

    return make


@pytest.fixture(scope="session", autouse=True)
def _remove_state() -> Iterator[None]:
    yield
    shutil.rmtree(STATE, ignore_errors=True)


@pytest.fixture(scope="session")
def downstream_service(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[downstream.RunningDownstream]:
    """The downstream service (harness/downstream.py) for the session, as a run starts it."""
    log = Path(tmp_path_factory.mktemp("downstream")) / "downstream.log"
    running = downstream.start(STATE, log)
    try:
        yield running
    finally:
        running.stop()


class JobWorker:
    """The session's job worker (harness/worker.py), for the pairs that declare one; `restart`
    replaces it (a test that kills it starts the next one here, so later tests have one)."""

    def __init__(
        self, servers: services.Endpoints, service: downstream.RunningDownstream, log: Path
    ):
        from pairbench.targets.registry import load_pairs

        self.pairs = [p.name for p in load_pairs().values() if p.server.worker]
        self._args = (servers.pg_dsn, servers.redis_url, STATE, log, service.env())
        self.running = worker.start(self.pairs, *self._args)

    def restart(self) -> worker.RunningWorker:
        self.running.stop()
        self.running = worker.start(self.pairs, *self._args)
        return self.running


@pytest.fixture(scope="module")
def job_worker(
    servers: services.Endpoints,
    downstream_service: downstream.RunningDownstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[JobWorker]:
    """The job worker as a run starts it, on the session's servers and downstream service; for
    one module only, since its polling of Redis would land in later tests' Redis command counts
    (INFO commandstats is server-wide), as a run stops it after its pair's turn."""
    workers = JobWorker(
        servers, downstream_service, Path(tmp_path_factory.mktemp("worker")) / "worker.log"
    )
    try:
        yield workers
    finally:
        workers.running.stop()


@pytest.fixture(scope="session")
def target_server(
    servers: services.Endpoints,
    downstream_service: downstream.RunningDownstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[server.TargetServer]:
    """The targets app under a real uvicorn, on the session's servers and downstream service."""
    log = Path(tmp_path_factory.mktemp("target")) / "server.log"
    running = server.start(
        servers.pg_dsn, servers.redis_url, log, extra_env=downstream_service.env()
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def target(target_server: server.TargetServer) -> Iterator[httpx.Client]:
    """An HTTP client bound to the running targets app."""
    with httpx.Client(base_url=target_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def server_env(servers: services.Endpoints) -> dict[str, str]:
    """Environment for a `pairbench` subprocess that reuses the session's servers."""
    return {
        **os.environ,
        "PAIRBENCH_PG_DSN": servers.pg_dsn,
        "PAIRBENCH_REDIS_URL": servers.redis_url,
    }


@pytest.fixture
def browser() -> Iterator[Any]:
    """A real headless chromium driven by selenium (tests/browser.py), quit after the test;
    the test is skipped, saying what is missing, where chromium or its driver is not installed."""
    from .browser import headless_chromium

    with headless_chromium() as driver:
        yield driver


MICRO_ROUNDS = 20  # enough that a constructed 2x slowdown is significant on a noisy shared machine
MicroSession = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture(scope="session")
def run_micro_suite() -> MicroSession:
    """`pytest benchmarks/micro`, for real: the `test` data profile, MICRO_ROUNDS short rounds
    per core, saved with its rounds into `storage`; `extra` arguments (e.g. `-k PAIR`) added."""

    def run(storage: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
        root = Path(__file__).resolve().parents[1]
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(root / "benchmarks" / "micro"),
            "-q",
            "-p",
            "no:cacheprovider",
            *extra,
            "--micro-profile",
            "test",
            "--benchmark-min-rounds",
            str(MICRO_ROUNDS),
            "--benchmark-max-time",
            "0.02",
            "--benchmark-warmup",
            "off",
            "--benchmark-autosave",
            "--benchmark-save-data",
            f"--benchmark-storage=file://{storage}",
        ]
        return subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=600
        )

    return run


def rewrite_micro(source: Path, target: Path, change: Callable[[Any], object]) -> Path:
    """A copy of a saved micro file with `change(doc)` applied (a commit, a machine, scaled data)."""
    doc = json.loads(source.read_text(encoding="utf-8"))
    change(doc)
    target.write_text(json.dumps(doc), encoding="utf-8")
    return target


def scale_micro(doc: dict[str, Any], factor: float) -> None:
    """Every benchmark `factor` times slower: every round's time, and the stats read from them."""
    for bench in doc["benchmarks"]:
        stats = bench["stats"]
        stats["data"] = [t * factor for t in stats["data"]]
        for key in ("min", "max", "mean", "median", "q1", "q3", "iqr", "stddev", "total"):
            stats[key] *= factor
