"""The fault matrix: each fault during a real run, and what the user and the machine are left with.

Every case runs `pairbench run` on a fixture pair whose target keeps a forkserver process pool
(tests/faults/pairs/fault_pool.py: the server has grandchildren), waits for the first trial in
run.json, records every process of pairbench's tree (grandchildren included), causes the fault
and asserts: the exit code, stderr's last line, the trials kept in run.json, and that none of the
recorded processes is alive a few seconds after pairbench exits (docs/architecture.md, "Owning
the process tree"). The process counts before and after each case go to
`<pytest tmp>/fault-matrix.json` and are printed (`pytest -s`).

Every run starts at once (a module fixture), so their start-ups overlap and the folder stays
within its time budget; a light load (one user with think time) keeps them from crowding the
machine while they wait for their fault. The case that kills PostgreSQL lets its run start its
own (a state folder of its own), the one that kills Valkey too; the others reuse the session's
servers, which are not the run's and must survive.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from pairbench.harness import procs, services

PAIRS = Path(__file__).resolve().parent / "pairs"
PAIR = "fault_pool"
SCENARIO = """
pair = "fault_pool"
request = "/fault_pool/{variant}?ms={knob}"

[profiles.quick]
knob_values = [1]
users = 1
warmup_seconds = 0
trial_warmup_seconds = 0.05
round_seconds = 1.0
rounds = 1000
think_ms = 50
"""
SETTLE_S = 10.0  # how long the run's processes get to end after pairbench exits
RUN_TIMEOUT_S = 120.0  # generous: every run starts at once on a small machine
LEDGER: list[dict[str, object]] = []


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fault-scenarios")
    (folder / f"{PAIR}.toml").write_text(SCENARIO)
    return folder


@pytest.fixture(scope="module", autouse=True)
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Write and print every case's process counts when the module is done."""
    yield
    path = tmp_path_factory.getbasetemp() / "fault-matrix.json"
    path.write_text(json.dumps(LEDGER, indent=2))
    print(f"\nfault matrix ({path}):")
    for row in LEDGER:
        print(
            f"  {row['case']:<22} exit {row['exit']!s:>4}  processes before {row['before']:>3}"
            f"  after {row['after']}  trials kept {row['trials']}  | {row['line']}"
        )


def _tree(pid: int) -> dict[int, psutil.Process]:
    try:
        root = psutil.Process(pid)
        return {p.pid: p for p in [root, *root.children(recursive=True)]}
    except psutil.NoSuchProcess:
        return {}


def _cmd(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


@dataclass
class Outcome:
    code: int
    line: str
    trials: int
    status: str | None
    before: int
    survivors: list[str]


class Run:
    """One `pairbench run` under test, with every process of its tree recorded."""

    def __init__(self, env: dict[str, str], out: Path, *args: str) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pairbench",
                "run",
                PAIR,
                "--out",
                str(out),
                "--no-progress",
                *args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.seen: dict[int, psutil.Process] = {}
        # Read while alive (a dead process has none), and read again each time: a child seen
        # between fork and exec still carries its parent's command line (python3 for a
        # valkey-server about to start), so the latest one wins.
        self.commands: dict[int, str] = {}

    def record(self) -> None:
        """Add pairbench's tree as it is now to the processes seen."""
        for pid, process in _tree(self.proc.pid).items():
            self.seen[pid] = process
            command = _cmd(process)
            if command:
                self.commands[pid] = command

    def run_json(self) -> Path | None:
        found = sorted(self.out.glob("*/run.json"))
        return found[0] if found else None

    def trials(self) -> int:
        path = self.run_json()
        if path is None:
            return 0
        with contextlib.suppress(ValueError):
            return len(json.loads(path.read_text())["pairs"].get(PAIR, {}).get("trials", []))
        return 0

    def wait_for_trial(self) -> None:
        """Until run.json holds a trial; then record the whole tree."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while self.trials() == 0:
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            assert time.monotonic() < deadline, "no trial in time"
            self.record()
            time.sleep(0.05)
        self.record()

    def find(self, needle: str) -> psutil.Process:
        return next(p for p in self.seen.values() if needle in _cmd(p))

    def finish(self, case: str) -> Outcome:
        _, stderr = self.proc.communicate(timeout=RUN_TIMEOUT_S)
        lines = stderr.strip().splitlines()
        recorded = [p for p in self.seen.values() if p.pid != self.proc.pid]
        _, alive = psutil.wait_procs(recorded, timeout=SETTLE_S)
        survivors = [f"{p.pid} {_cmd(p)[:80]}" for p in alive]
        for p in alive:  # leave nothing behind for the next case, whatever the verdict
            with contextlib.suppress(psutil.Error):
                p.kill()
        path = self.run_json()
        status = json.loads(path.read_text())["status"] if path else None
        outcome = Outcome(
            self.proc.returncode,
            lines[-1] if lines else "",
            self.trials(),
            status,
            len(self.seen),
            survivors,
        )
        LEDGER.append(
            {
                "case": case,
                "exit": outcome.code,
                "line": outcome.line,
                "trials": outcome.trials,
                "before": outcome.before,
                "after": len(survivors),
            }
        )
        return outcome


def _env(scenarios: Path, base: dict[str, str], own: str | None, state: Path) -> dict[str, str]:
    """The run's environment: the session's servers, except `own` ("postgres" or "redis"),
    which the run starts itself in `state`."""
    env = {
        **base,
        "PAIRBENCH_PAIRS": str(PAIRS),
        "PAIRBENCH_SCENARIOS": str(scenarios),
        "PAIRBENCH_STATE_DIR": str(state),
    }
    if own in ("postgres", "both"):
        env.pop("PAIRBENCH_PG_DSN")
    if own in ("redis", "both"):
        env.pop("PAIRBENCH_REDIS_URL")
    return env


@dataclass
class Case:
    """A fault caused once the first trial is stored, and what must follow."""

    kill: Callable[[Run], None]
    code: int
    line: str  # a regex on stderr's last line
    # "postgres", "redis" or "both": the run starts its own (to lose it, or to stop it)
    own: str | None = None
    args: tuple[str, ...] = ()


def _signal_pairbench(sig: int) -> Callable[[Run], None]:
    return lambda run: os.kill(run.proc.pid, sig)


def _kill(needle: str) -> Callable[[Run], None]:
    return lambda run: run.find(needle).send_signal(signal.SIGKILL)


def _kill_postmaster(run: Run) -> None:
    postmaster = next(
        p for p in run.seen.values() if p.name() == "postgres" and p.ppid() == run.proc.pid
    )
    postmaster.send_signal(signal.SIGKILL)


CASES = {
    # Ctrl-C and SIGTERM with servers the run started: they must be stopped with it.
    "SIGINT pairbench": Case(
        _signal_pairbench(signal.SIGINT), 130, r"pairbench: error: interrupted$", own="both"
    ),
    "SIGTERM pairbench": Case(
        _signal_pairbench(signal.SIGTERM), 130, r"pairbench: error: interrupted$", own="both"
    ),
    "SIGKILL pairbench": Case(_signal_pairbench(signal.SIGKILL), -9, r".*"),
    "SIGKILL target server": Case(
        _kill("uvicorn"),
        3,
        r"pairbench: error: the target server \(pid \d+\) died during fault_pool/\w+: "
        r"killed by SIGKILL; log: \S+-server\.log$",
    ),
    "SIGKILL PostgreSQL": Case(
        _kill_postmaster,
        3,
        r"pairbench: error: PostgreSQL \(pid \d+\) died during fault_pool/\w+: "
        r"killed by SIGKILL; log: \S+postgres\.log$",
        own="postgres",
    ),
    "SIGKILL Valkey": Case(
        _kill("valkey-server"),
        3,
        r"pairbench: error: Redis \(valkey-server\) \(pid \d+\) died during fault_pool/\w+: "
        r"killed by SIGKILL; log: \S+redis\.log$",
        own="redis",
    ),
    "SIGKILL load agent": Case(
        _kill("harness.agent"),
        3,
        r"pairbench: error: the load generator \(locust\) \(pid \d+\) died: killed by SIGKILL; "
        r"log: \S+-agent\.log$",
    ),
    "SIGKILL locust worker": Case(
        _kill("--mode worker"),
        3,
        r"pairbench: error: load agent failed a trial: locust worker \(pid \d+\) died: "
        r"killed by SIGKILL; log: \S+-agent\.log$",
        args=("--processes", "2"),
    ),
}


FULL = "results folder full"
NO_WORKERS = "master, no workers"


@pytest.fixture(scope="module")
def runs(
    scenarios: Path, servers: services.Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Run | str]]:
    """Every case's run, started at once; a string where a case cannot run here (the reason)."""
    server_env = {
        **os.environ,
        "PAIRBENCH_PG_DSN": servers.pg_dsn,
        "PAIRBENCH_REDIS_URL": servers.redis_url,
    }
    started: dict[str, Run | str] = {}
    mounts: list[Path] = []
    states: list[Path] = []
    try:
        for case, spec in CASES.items():
            folder = tmp_path_factory.mktemp("fault")
            # Outside pytest's 0700 folders: as root, the postgres user must enter the state.
            state = Path(tempfile.mkdtemp(prefix="pairbench-fault-"))
            state.chmod(0o711)
            states.append(state)
            started[case] = Run(
                _env(scenarios, server_env, spec.own, state), folder / "out", *spec.args
            )
        folder = tmp_path_factory.mktemp("fault")
        env = _env(scenarios, server_env, None, folder)
        out = folder / "out"
        out.mkdir()
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(out)],
            capture_output=True,
            text=True,
        )
        if mounted.returncode == 0:
            mounts.append(out)
            started[FULL] = Run(env, out)
        else:
            started[FULL] = f"cannot mount a tmpfs here: {mounted.stderr.strip()}"
        yield started
    finally:
        for run in started.values():
            if isinstance(run, Run) and run.proc.poll() is None:
                run.proc.kill()
                run.proc.communicate()
        for run in started.values():
            if isinstance(run, Run):
                _, alive = psutil.wait_procs(list(run.seen.values()), timeout=SETTLE_S)
                for p in alive:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
        for out in mounts:
            subprocess.run(["umount", "-l", str(out)], capture_output=True)
        for state in states:
            shutil.rmtree(state, ignore_errors=True)


def _run(runs: dict[str, Run | str], case: str) -> Run:
    run = runs[case]
    if isinstance(run, str):
        pytest.skip(run)
    return run


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_fault(case: str, runs: dict[str, Run | str]) -> None:
    spec = CASES[case]
    run = _run(runs, case)
    run.wait_for_trial()
    assert any("forkserver" in c for c in run.commands.values())  # the grandchildren exist
    names = {c.split()[0].rsplit("/", 1)[-1] for c in run.commands.values() if c.strip()}
    if spec.own in ("postgres", "both"):
        assert "postgres" in names, names  # the run's own server, among what must end
    if spec.own in ("redis", "both"):
        assert "valkey-server" in names, names
    spec.kill(run)
    outcome = run.finish(case)
    assert outcome.code == spec.code, outcome.line
    assert re.search(spec.line, outcome.line), outcome.line
    assert "Traceback" not in outcome.line
    assert outcome.trials >= 1  # every trial stored before the fault is kept
    if outcome.code != -9:
        assert outcome.status == ("interrupted" if outcome.code == 130 else "failed")
    assert outcome.survivors == []


def test_results_folder_unwritable_mid_run(runs: dict[str, Run | str]) -> None:
    """The results folder is a tmpfs (room for many rewrites of run.json), filled up by the test
    once the run has stored trials: the next write fails with ENOSPC."""
    run = _run(runs, FULL)
    run.wait_for_trial()
    run_json = run.run_json()
    assert run_json is not None
    with contextlib.suppress(OSError), open(run.out / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()
    outcome = run.finish(FULL)
    assert outcome.code == 3, outcome.line
    folder = re.escape(str(run_json.parent))
    assert re.search(
        rf"pairbench: error: cannot write the results folder {folder}: No space left on device "
        r"\(ENOSPC\); the last good run.json \(\d+ trial\(s\)\) is kept$",
        outcome.line,
    ), outcome.line
    kept = json.loads(run_json.read_text())  # intact: the writes are atomic
    assert kept["status"] == "running" and len(kept["pairs"][PAIR]["trials"]) >= 1
    assert not list(run_json.parent.glob(".*.tmp"))  # no half-written temporary left
    assert outcome.survivors == []


def test_master_with_no_workers(
    scenarios: Path, server_env: dict[str, str], tmp_path: Path
) -> None:
    """A distributed run whose remote worker never connects gives up after the bounded wait."""
    env = {
        **_env(scenarios, server_env, None, tmp_path),
        "PAIRBENCH_WORKER_TIMEOUT": "2",
    }
    port = str(procs.free_port())
    run = Run(env, tmp_path / "out", "--remote-workers", "1", "--master-port", port)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while run.proc.poll() is None and time.monotonic() < deadline:
        run.record()
        time.sleep(0.05)
    outcome = run.finish(NO_WORKERS)
    assert outcome.code == 3, outcome.line
    assert re.search(
        r"pairbench: error: load agent did not start: only 0 of 1 locust worker\(s\) connected "
        rf"to the master at 127\.0\.0\.1:{port} within 2 s",
        outcome.line,
    ), outcome.line
    assert any("harness.agent" in c for c in run.commands.values())  # the master had started
    assert outcome.trials == 0  # verified, never measured
    assert outcome.survivors == []


@pytest.mark.parametrize(
    ("master", "code", "line"),
    [
        (
            "nowhere.invalid:5557",
            2,
            r"--master nowhere\.invalid:5557: the host nowhere\.invalid does not resolve",
        ),
        ("127.0.0.1", 2, r"--master 127\.0\.0\.1: expected HOST:PORT$"),
        (
            "127.0.0.1:{port}",
            3,
            r"no locust master answers at 127\.0\.0\.1:\d+ \(--master\) after 1 s",
        ),
    ],
    ids=["does not resolve", "no port", "does not answer"],
)
def test_worker_with_no_master(master: str, code: int, line: str) -> None:
    before = len(psutil.Process().children(recursive=True))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pairbench",
            "worker",
            "--master",
            master.format(port=procs.free_port()),
            "--host",
            "http://127.0.0.1:8000",
            "--wait",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == code, result.stderr
    assert re.search(rf"^pairbench: error: {line}", last), last
    after = len(psutil.Process().children(recursive=True))
    LEDGER.append(
        {
            "case": f"worker, {master}",
            "exit": code,
            "line": last,
            "trials": 0,
            "before": before,
            "after": after,
        }
    )
    assert after == before
