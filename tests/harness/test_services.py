"""The embedded servers start, answer, and stop with nothing left behind, on every exit path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from pairbench.errors import Interrupted
from pairbench.harness import procs, services


def test_provide_starts_real_servers_and_stops_them(isolated_state: Path) -> None:
    with services.provide(services.ServiceOptions()) as endpoints:
        pids = [s.pid for s in endpoints.started]
        assert endpoints.pg_source == "embedded" and endpoints.redis_source == "embedded"
        with psycopg.connect(endpoints.pg_dsn) as conn:
            assert conn.execute("SHOW server_version").fetchone()[0].startswith("18")
        assert redis.Redis.from_url(endpoints.redis_url).ping()
        assert all(procs.pid_alive(p) for p in pids)
    assert not any(procs.pid_alive(p) for p in pids)


def test_servers_stop_when_the_block_raises(isolated_state: Path) -> None:
    pids: list[int] = []
    with pytest.raises(Interrupted), services.provide(services.ServiceOptions()) as endpoints:
        pids = [s.pid for s in endpoints.started]
        raise Interrupted("SIGINT")
    assert len(pids) == 2 and not any(procs.pid_alive(p) for p in pids)


def test_given_dsn_starts_nothing(servers: services.Endpoints) -> None:
    options = services.ServiceOptions(pg_dsn=servers.pg_dsn, redis_url=servers.redis_url)
    with services.provide(options) as endpoints:
        assert endpoints.started == [] and endpoints.pg_source == "dsn"


def _hidden_path() -> str:
    """PATH without any PostgreSQL or Redis server binary of the system."""
    keep = [str(Path(sys.executable).parent), "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    return os.pathsep.join(keep)


def test_services_up_down_with_system_binaries_hidden(
    isolated_state: Path, pairbench: list[str]
) -> None:
    env = {**os.environ, "PATH": _hidden_path()}
    for name in ("postgres", "initdb", "pg_ctl", "redis-server", "valkey-server"):
        assert shutil.which(name, path=env["PATH"]) is None, f"{name} is visible"
    up = subprocess.run(
        [*pairbench, "services", "up"], env=env, capture_output=True, text=True, timeout=120
    )
    assert up.returncode == 0, up.stderr
    assert "services up in" in up.stdout
    status = subprocess.run(
        [*pairbench, "services", "status"], env=env, capture_output=True, text=True
    )
    assert "postgresql://pairbench:" in status.stdout and "redis://127.0.0.1:" in status.stdout
    state_file = services._read_state(isolated_state)
    pids = [int(state_file["postgres"]["pid"]), int(state_file["redis"]["pid"])]
    assert (
        state_file["postgres"]["source"] == "embedded"
        and state_file["redis"]["source"] == "embedded"
    )
    assert all(procs.pid_alive(p) for p in pids)  # they outlive the `up` command
    for pid, folder in zip(pids, ("pgdata", "redis"), strict=True):
        assert f"pid {pid}" in status.stdout and str(isolated_state / folder) in status.stdout
    again = subprocess.run(
        [*pairbench, "services", "up"], env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert "services already running" in again.stdout and str(isolated_state) in again.stdout
    assert services._read_state(isolated_state) == state_file  # reused, nothing new started
    down = subprocess.run(
        [*pairbench, "services", "down"], env=env, capture_output=True, text=True, timeout=60
    )
    assert down.returncode == 0, down.stderr
    assert not any(procs.pid_alive(p) for p in pids)


def test_children_die_with_a_killed_orchestrator(isolated_state: Path) -> None:
    """Even SIGKILL of pairbench (no cleanup code runs) leaves no server: PR_SET_PDEATHSIG."""
    script = (
        "import sys, time\n"
        "from pairbench.harness import services\n"
        "with services.provide(services.ServiceOptions()) as ep:\n"
        "    print(' '.join(str(s.pid) for s in ep.started), flush=True)\n"
        "    time.sleep(600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    pids = [int(p) for p in child.stdout.readline().split()]
    assert len(pids) == 2 and all(procs.pid_alive(p) for p in pids)
    child.kill()
    child.wait()
    _, alive = psutil.wait_procs(
        [psutil.Process(p) for p in pids if procs.pid_alive(p)], timeout=15
    )
    assert not alive, f"left behind: {alive}"
