"""The process group ends with the run: SIGINT and SIGTERM of `pairbench run` stop every member
(exit 130), and a member's death ends the run in one line naming it and its log (exit 3).

Each case runs `pairbench run` on a fixture pair served by the group
(tests/faults/group_pairs/fault_group.py), waits for the first trial in run.json, finds the
members in pairbench's tree, causes the fault, and asserts the exit code, stderr's last line,
and that no member's PID is left (docs/architecture.md, "The process group"). The session's
PostgreSQL and Valkey are reused: they are not the run's and must survive.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pairbench import runmodel
from pairbench.harness import group, procs, services

from . import children

PAIRS = Path(__file__).resolve().parent / "group_pairs"
RUN_FORMAT = Path(__file__).resolve().parents[2] / "docs" / "run-format.md"
PAIR = "fault_group"
SCENARIO = children.endless_scenario(PAIR)
RUN_TIMEOUT_S = children.RUN_TIMEOUT_S
SETTLE_S = 10.0

Fault = children.Fault  # called with the run and its members


def _kill_member(run: subprocess.Popen[str], members: list[psutil.Process]) -> None:
    members[-1].send_signal(signal.SIGKILL)


CASES: dict[str, tuple[Fault, int, str]] = {
    **children.INTERRUPTS,
    "SIGKILL a member": (
        _kill_member,
        3,
        r"pairbench: error: process group member \d+ \(pid \d+\) died during fault_group/\w+:"
        r" killed by SIGKILL; log: \S+-group-\d+\.log$",
    ),
}


@pytest.fixture
def state() -> Iterator[Path]:
    with children.state_folder("pairbench-group-fault-") as folder:
        yield folder


def _members(pid: int) -> list[psutil.Process]:
    found = []
    with contextlib.suppress(psutil.NoSuchProcess):
        for each in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if group.MEMBER_MODULE in " ".join(each.cmdline()):
                    found.append(each)
    return found


def _recorded(out: Path) -> dict[str, object]:
    """run.json's metadata.group, after checking that run.json holds only documented keys."""
    for path in out.glob("*/run.json"):
        stored = json.loads(path.read_text())
        assert runmodel.undocumented_paths(stored, RUN_FORMAT.read_text(encoding="utf-8")) == []
        recorded: dict[str, object] = stored["metadata"]["group"]
        return recorded
    return {}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_group_ends_with_the_run(
    case: str, servers: services.Endpoints, state: Path, tmp_path: Path
) -> None:
    fault, code, line = CASES[case]
    run, out = children.start_run(PAIR, SCENARIO, PAIRS, servers, state, tmp_path)
    try:
        members = _members(run.pid)
        assert len(members) == group.processes(), "not one member per core in pairbench's tree"
        fault(run, members)
        _, stderr = run.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        children.end(run)
    last = (stderr.strip().splitlines() or [""])[-1]
    assert run.returncode == code, stderr
    assert re.search(line, last), last
    assert "Traceback" not in stderr
    _, alive = psutil.wait_procs(members, timeout=SETTLE_S)
    assert alive == [], f"group members {[p.pid for p in alive]} outlived the run"
    assert not any(procs.pid_alive(p.pid) for p in members)
    recorded = _recorded(out)
    assert recorded["processes"] == len(members)
    assert sorted(m["pid"] for m in recorded["members"]) == sorted(p.pid for p in members)  # type: ignore[attr-defined]
