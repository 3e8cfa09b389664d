"""The job worker ends with the run: SIGINT and SIGTERM of `pairbench run` stop it (exit 130),
and its own death ends the run in one line naming it and its log (exit 3).

Each case runs `pairbench run` on a fixture pair that declares the worker
(tests/faults/worker_pairs/fault_worker.py), waits for the first trial in run.json, finds the
worker's process in pairbench's tree, causes the fault, and asserts the exit code, stderr's last
line, and that the worker's PID and its folder are gone (docs/architecture.md, "The job
worker"). The session's PostgreSQL and Valkey are reused: they are not the run's and must
survive.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pairbench import runmodel
from pairbench.harness import procs, services, worker

from . import children

PAIRS = Path(__file__).resolve().parent / "worker_pairs"
RUN_FORMAT = Path(__file__).resolve().parents[2] / "docs" / "run-format.md"
PAIR = "fault_worker"
SCENARIO = children.endless_scenario(PAIR)
RUN_TIMEOUT_S = children.RUN_TIMEOUT_S
SETTLE_S = 10.0


def _kill_worker(run: subprocess.Popen[str], process: psutil.Process) -> None:
    process.send_signal(signal.SIGKILL)


CASES = {
    **children.INTERRUPTS,
    "SIGKILL worker": (
        _kill_worker,
        3,
        r"pairbench: error: the job worker \(pid \d+\) died during fault_worker/\w+:"
        r" killed by SIGKILL; log: \S+-worker\.log$",
    ),
}


@pytest.fixture
def state() -> Iterator[Path]:
    with children.state_folder("pairbench-worker-fault-") as folder:
        yield folder


def _trials(out: Path) -> int:
    return children.trials(out, PAIR)


def _recorded(out: Path) -> dict[str, object]:
    """run.json's metadata.worker, after checking that run.json holds only documented keys."""
    for path in out.glob("*/run.json"):
        stored = json.loads(path.read_text())
        assert runmodel.undocumented_paths(stored, RUN_FORMAT.read_text(encoding="utf-8")) == []
        worker_record: dict[str, object] = stored["metadata"]["worker"]
        return worker_record
    return {}


def _worker(pid: int) -> psutil.Process | None:
    return children.child(pid, worker.WORKER_MODULE)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_worker_ends_with_the_run(
    case: str, servers: services.Endpoints, state: Path, tmp_path: Path
) -> None:
    fault, code, line = CASES[case]
    run, out = children.start_run(PAIR, SCENARIO, PAIRS, servers, state, tmp_path)
    try:
        process = _worker(run.pid)
        assert process is not None, "no job worker in pairbench's tree"
        folders = list((state / "worker").glob("run-*"))
        assert len(folders) == 1 and (folders[0] / "ready").exists()
        fault(run, process)
        _, stderr = run.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        children.end(run)
    last = (stderr.strip().splitlines() or [""])[-1]
    assert run.returncode == code, stderr
    assert re.search(line, last), last
    assert "Traceback" not in stderr
    _, alive = psutil.wait_procs([process], timeout=SETTLE_S)
    assert alive == [], f"the job worker (pid {process.pid}) outlived the run"
    assert not procs.pid_alive(process.pid)
    assert list((state / "worker").glob("run-*")) == []  # its folder is removed with it
    assert _trials(out) >= 1  # the trials stored before the fault are kept
    assert _recorded(out)["pid"] == process.pid  # run.json names the worker it started
