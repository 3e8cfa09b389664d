"""The downstream service ends with the run: SIGINT and SIGTERM of `pairbench run` stop it (exit
130), and its own death ends the run in one line naming it and its log (exit 3).

Each case runs `pairbench run` on a fixture pair that declares the service
(tests/faults/downstream_pairs/fault_downstream.py), waits for the first trial in run.json, finds
the service's process in pairbench's tree, causes the fault, and asserts the exit code, stderr's
last line, and that the service's PID and its certificate folder are gone (docs/architecture.md,
"The downstream service"). The session's PostgreSQL and Valkey are reused: they are not the
run's and must survive.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from pairbench.harness import downstream, procs, services

from . import children

PAIRS = Path(__file__).resolve().parent / "downstream_pairs"
PAIR = "fault_downstream"
SCENARIO = children.endless_scenario(
    PAIR,
    """
[downstream]  # applied to the running service before the pair (POST /configure)
concurrency = 3
over_limit = "reject"
""",
)
RUN_TIMEOUT_S = children.RUN_TIMEOUT_S
SETTLE_S = 10.0


def _kill_service(run: subprocess.Popen[str], service: psutil.Process) -> None:
    service.send_signal(signal.SIGKILL)


CASES = {
    **children.INTERRUPTS,
    "SIGKILL downstream": (
        _kill_service,
        3,
        r"pairbench: error: the downstream service \(pid \d+\) died during fault_downstream/\w+:"
        r" killed by SIGKILL; log: \S+-downstream\.log$",
    ),
}


@pytest.fixture
def state() -> Iterator[Path]:
    with children.state_folder("pairbench-downstream-fault-") as folder:
        yield folder


def _trials(out: Path) -> int:
    return children.trials(out, PAIR)


def _service(pid: int) -> psutil.Process | None:
    return children.child(pid, downstream.APP_MODULE)


def _assert_configured(service: psutil.Process, ca: Path, out: Path) -> None:
    """The scenario's [downstream] table is what the service runs with, and what run.json says."""
    argv = service.cmdline()
    port = argv[argv.index("--port") + 1]
    stats = httpx.get(f"https://127.0.0.1:{port}/stats", verify=downstream.trust(ca)).json()
    assert (stats["concurrency"], stats["over_limit"]) == (3, "reject")
    (run_json,) = out.glob("*/run.json")
    doc = json.loads(run_json.read_text())
    assert doc["pairs"][PAIR]["downstream"] == {"concurrency": 3, "over_limit": "reject"}
    assert doc["metadata"]["downstream"]["concurrency"] == downstream.DEFAULT_CONCURRENCY


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_service_ends_with_the_run(
    case: str, servers: services.Endpoints, state: Path, tmp_path: Path
) -> None:
    fault, code, line = CASES[case]
    run, out = children.start_run(PAIR, SCENARIO, PAIRS, servers, state, tmp_path)
    try:
        service = _service(run.pid)
        assert service is not None, "no downstream service in pairbench's tree"
        folders = list((state / "downstream").glob("tls-*"))
        assert len(folders) == 1 and (folders[0] / "ca.pem").exists()
        _assert_configured(service, folders[0] / "ca.pem", out)
        fault(run, service)
        _, stderr = run.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        children.end(run)
    last = (stderr.strip().splitlines() or [""])[-1]
    assert run.returncode == code, stderr
    assert re.search(line, last), last
    assert "Traceback" not in stderr
    _, alive = psutil.wait_procs([service], timeout=SETTLE_S)
    assert alive == [], f"the downstream service (pid {service.pid}) outlived the run"
    assert not procs.pid_alive(service.pid)
    assert list((state / "downstream").glob("tls-*")) == []  # its key is removed with it
    assert _trials(out) >= 1  # the trials stored before the fault are kept
