"""A distributed run across real interfaces: network namespaces joined by veth links.

Three namespaces of the test's own (docs/distributed.md, "Rehearsed on one machine"):

    server  10.213.1.1 ── veth ── 10.213.1.2  load1: `pairbench worker`
            10.213.2.1 ── veth ── 10.213.2.2  load2: `pairbench worker` (route to 10.213.1.0/24)

`server` runs `pairbench run --remote-workers 2`: its own PostgreSQL and Valkey (on that
namespace's loopback), the target on every address of the namespace (PAIRBENCH_BIND_HOST
0.0.0.0), the locust master on 10.213.1.1. Each worker loads the target through its own link,
at the server's address on that link: its own --host. The master's URL, http://0.0.0.0:PORT,
is each worker's own loopback, where nothing listens: a worker that loaded the URL the master
sends with every spawn (locust's default) would fail every request (harness/loadgen.py,
Trial.own_host).

Needs root and `ip netns`; skipped, with the reason, where either is missing. Every namespace,
link and address is created here with a per-run suffix and removed on every exit path; traffic
goes only between these namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from hdrh.histogram import HdrHistogram

from pairbench.harness import procs

FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
PAIR = "fixture_busy"
SCENARIO = f"""
pair = "{PAIR}"
request = "/{PAIR}/{{variant}}?ms={{knob}}"

[profiles.quick]
knob_values = [1]
users = 2
warmup_seconds = 0
trial_warmup_seconds = 0.1
round_seconds = 0.5
rounds = 2
"""
SERVER_ADDRESS = "10.213.1.1"  # the master's
BIND_ALL = "0.0.0.0"
LINKS = [  # (server side, load side, prefix length): one /24 per worker namespace
    ("10.213.1.1", "10.213.1.2"),
    ("10.213.2.1", "10.213.2.2"),
]
PREFIX = 24
RUN_TIMEOUT_S = 180.0
IP_TIMEOUT_S = 10.0
PIN = "on"  # the loopback run also checks CPU isolation (harness/pinning.py)
AGENT = "pairbench.harness.agent"
TARGET_APP = "pairbench.targets.app:create_app"
WORKER_LINE = re.compile(r"--host http://0\.0\.0\.0:(\d+)")


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )


def _why_not() -> str | None:
    """Why namespaces cannot be built here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    probe = f"pbprobe-{uuid.uuid4().hex[:8]}"
    added = _ip("netns", "add", probe)
    if added.returncode != 0:
        return f"`ip netns add` failed: {added.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass
class Topology:
    server: str
    loads: list[str]


def _must(*args: str) -> None:
    done = _ip(*args)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@pytest.fixture
def topology() -> Iterator[Topology]:
    """The namespaces and links, removed (links go with their namespaces) on every exit path."""
    reason = _why_not()
    if reason is not None:
        print(f"skipped: {reason}")
        pytest.skip(reason)
    suffix = uuid.uuid4().hex[:6]
    server = f"pbsrv-{suffix}"
    loads = [f"pbld{i}-{suffix}" for i in range(1, len(LINKS) + 1)]
    made: list[str] = []
    try:
        for name in [server, *loads]:
            _must("netns", "add", name)
            made.append(name)
            _must("-n", name, "link", "set", "lo", "up")
        for i, (load, (near, far)) in enumerate(zip(loads, LINKS, strict=True), start=1):
            # Created inside the namespaces: no interface ever appears in the test's own one.
            a, b = f"pbs{i}-{suffix}", f"pbl{i}-{suffix}"
            _must(
                "link", "add", a, "netns", server, "type", "veth", "peer", "name", b, "netns", load
            )
            _must("-n", server, "addr", "add", f"{near}/{PREFIX}", "dev", a)
            _must("-n", load, "addr", "add", f"{far}/{PREFIX}", "dev", b)
            _must("-n", server, "link", "set", a, "up")
            _must("-n", load, "link", "set", b, "up")
            if near != SERVER_ADDRESS:  # the server's first address, through this link
                _must("-n", load, "route", "add", f"{SERVER_ADDRESS}/32", "via", near)
        yield Topology(server, loads)
    finally:
        for name in reversed(made):
            _ip("netns", "del", name)
        left = _ip("netns", "list").stdout
        assert not any(name in left for name in made), left


def _spawn(
    namespace: str, argv: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    # `ip netns exec` execs the command: the PID is the command's own, ended by it.
    with log.open("wb") as out:
        return subprocess.Popen(
            ["ip", "netns", "exec", namespace, *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_distributed_run_across_namespaces(
    topology: Topology, isolated_state: Path, tmp_path: Path
) -> None:
    """Two workers in two namespaces load a target in a third: per-worker counts add up to the
    merged histogram's, and the run's metadata names every worker's host and address."""
    started = time.monotonic()
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / f"{PAIR}.toml").write_text(SCENARIO)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PAIRBENCH_PG_DSN", "PAIRBENCH_REDIS_URL")  # the run starts its own
    }
    env.update(
        PAIRBENCH_PAIRS=str(FIXTURE_PAIRS),
        PAIRBENCH_SCENARIOS=str(scenarios),
        PAIRBENCH_STATE_DIR=str(isolated_state),
        PAIRBENCH_BIND_HOST=BIND_ALL,
    )
    port = "5557"  # the namespace's own port space: nothing else listens there
    out = tmp_path / "out"
    run_log = tmp_path / "run.log"
    run = _spawn(
        topology.server,
        [
            sys.executable, "-m", "pairbench", "run", PAIR, "--rounds", "2", "--seed", "1",
            "--out", str(out), "--remote-workers", "2",
            "--master-bind", SERVER_ADDRESS, "--master-port", port,
        ],
        env,
        run_log,
    )  # fmt: skip
    workers: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        found = None
        while found is None:
            found = WORKER_LINE.search(run_log.read_text(errors="replace"))
            assert run.poll() is None or found, run_log.read_text()
            assert time.monotonic() < deadline, run_log.read_text()
            time.sleep(0.1)
        urls = [f"http://{near}:{found.group(1)}" for near, _ in LINKS]
        for i, (load, url) in enumerate(zip(topology.loads, urls, strict=True)):
            workers.append(
                _spawn(
                    load,
                    [
                        sys.executable,
                        "-m",
                        "pairbench",
                        "worker",
                        "--master",
                        f"{SERVER_ADDRESS}:{port}",
                        "--host",
                        url,
                    ],
                    env,
                    tmp_path / f"worker{i}.log",
                )
            )
        code = run.wait(timeout=max(1.0, deadline - time.monotonic()))
        assert code == 0, run_log.read_text()
        for worker in workers:  # the master tells them to quit when the run ends
            assert worker.wait(timeout=30) == 0
    finally:
        for proc in [*workers, run]:
            procs.stop_pid(proc.pid, popen=proc)
    [run_json] = out.glob("*/run.json")
    doc = json.loads(run_json.read_text())
    hosts = doc["metadata"]["load_generator"]["workers"]
    assert sorted((w["address"], w["target"]) for w in hosts) == sorted(
        (far, url) for (_, far), url in zip(LINKS, urls, strict=True)
    ), hosts
    assert all(w["hostname"] for w in hosts), hosts
    trials = doc["pairs"][PAIR]["trials"]
    assert len(trials) == 4  # 2 rounds x 2 variants
    for trial in trials:
        merged = HdrHistogram.decode(trial["histogram"]).get_total_count()
        shares = trial["workers"]
        assert [w["index"] for w in shares] == [0, 1]
        assert all(w["count"] > 0 for w in shares), shares  # both links carried load
        assert merged == sum(w["count"] for w in shares) == trial["requests"], trial["workers"]
        assert trial["errors"] == 0 and trial["valid"], trial["invalid_reasons"]
    print(f"namespace run: {time.monotonic() - started:.1f} s, trials {len(trials)}")


def _affinities(pid: int) -> dict[str, set[int]]:
    """The load agent's and the target server's CPU sets, among `pid`'s descendants."""
    found: dict[str, set[int]] = {}
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                line = " ".join(child.cmdline())
                role = "load" if AGENT in line else "target" if TARGET_APP in line else None
                if role is not None:
                    found[role] = set(child.cpu_affinity())
    return found


def test_worker_without_host_loads_the_masters_target(
    isolated_state: Path, server_env: dict[str, str], tmp_path: Path
) -> None:
    """No --host (compose.yaml's worker, in the runner's namespace): the target the master
    names, here the run's own on loopback, on a port the worker could not have known. With
    --pin on, the agent and the target run on the CPU sets run.json records."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / f"{PAIR}.toml").write_text(SCENARIO)
    env = {
        **os.environ,
        **server_env,
        "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS),
        "PAIRBENCH_SCENARIOS": str(scenarios),
        "PAIRBENCH_STATE_DIR": str(isolated_state),
    }
    env.pop("PAIRBENCH_BIND_HOST", None)
    port = str(procs.free_port())
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pairbench"]
    with (tmp_path / "run.log").open("wb") as log:
        run = subprocess.Popen(
            [*command, "run", PAIR, "--rounds", "1", "--out", str(out),
             "--remote-workers", "1", "--master-port", port, "--pin", PIN],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [*command, "worker", "--master", f"127.0.0.1:{port}", "--wait", "60"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    seen: dict[str, set[int]] = {}  # the run's processes, by role, and the CPUs they may use
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while run.poll() is None and time.monotonic() < deadline:
            seen.update(_affinities(run.pid))
            time.sleep(0.1)
        assert run.wait(timeout=5) == 0, (tmp_path / "run.log").read_text()
        assert worker.wait(timeout=30) == 0
    finally:
        for proc in (worker, run):
            procs.stop_pid(proc.pid, popen=proc)
    [run_json] = out.glob("*/run.json")
    doc = json.loads(run_json.read_text())
    pinning = doc["metadata"]["pinning"]
    if PIN == "on" and len(os.sched_getaffinity(0)) >= 2:  # --pin on: pinned, and recorded
        assert pinning["applied"] and pinning["mode"] == "on"
        assert seen == {role: set(pinning["cpus"][role]) for role in ("load", "target")}, seen
    [described] = doc["metadata"]["load_generator"]["workers"]
    assert described["target"] is None and described["address"] == "127.0.0.1"
    for trial in doc["pairs"][PAIR]["trials"]:
        assert trial["requests"] > 0 and trial["errors"] == 0 and trial["valid"], trial
        assert [w["count"] for w in trial["workers"]] == [
            HdrHistogram.decode(trial["histogram"]).get_total_count()
        ]
