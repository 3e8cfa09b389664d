"""Figures drawn in forked processes are the files drawn in this one, in the same order; a
worker's error reaches the caller; a caller with threads draws alone; and no worker outlives
a parent killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.figures import pair as pair_figures
from pairbench.results.figures import workers
from pairbench.results.figures.canvas import caption

pytestmark = pytest.mark.skipif(
    workers.processes_for(2) < 2, reason="needs fork, pidfd and two cores"
)
GONE_WITHIN_S = 10.0


def _jobs(run: dict, name: str, folder: Path) -> list[tuple[object, ...]]:
    pair = run["pairs"][name]
    analysis = analyse_pair(pair)
    largest = list(analysis["per_variant"])[-1]
    text = caption(run)
    return [(kind, name, pair, analysis, largest, text, folder) for kind in pair_figures.FIGURES]


def test_forked_figures_are_the_same_files_in_the_same_order(
    tmp_path: Path, two_pair_run: dict
) -> None:
    alone, forked = tmp_path / "alone", tmp_path / "forked"
    alone.mkdir()
    forked.mkdir()
    drawn = {}
    for folder, processes in ((alone, 1), (forked, 2)):
        paths = workers.map_in_order(
            pair_figures._draw, _jobs(two_pair_run, "busy", folder), processes
        )
        drawn[processes] = [p for each in paths for p in each]
    assert [p.name for p in drawn[1]] == [p.name for p in drawn[2]]
    kinds = [p.name.split("-")[1].split(".")[0] for p in drawn[1]]
    assert kinds == sorted(kinds, key=list(pair_figures.FIGURES).index)  # the listed order
    assert "bystander" in kinds
    for one, two in zip(drawn[1], drawn[2], strict=True):
        assert one.read_bytes() == two.read_bytes(), one.name


def test_a_workers_error_is_raised_in_the_caller(tmp_path: Path, demo_run: dict) -> None:
    jobs = _jobs(demo_run, "demo", tmp_path / "missing" / "folder")  # nowhere to write
    with pytest.raises(FileNotFoundError):
        workers.map_in_order(pair_figures._draw, jobs, 2)


def test_a_caller_with_threads_draws_in_its_own_process() -> None:
    assert workers.processes_for(3) >= 2
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert workers.processes_for(3) == 1
    finally:
        release.set()
        other.join()
    assert workers.processes_for(1) == 1


PARENT = textwrap.dedent(
    """
    import time
    from pairbench.results.figures import workers

    workers.map_in_order(time.sleep, [(600,), (600,)], 2)
    """
)


def test_no_worker_outlives_a_killed_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        deadline = time.monotonic() + 60
        children: list[psutil.Process] = []
        while len(children) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            children = psutil.Process(parent.pid).children()
        assert len(children) == 2, "the workers did not start"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + GONE_WITHIN_S
        while (alive := [p for p in children if _running(p)]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive, [p.pid for p in alive]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def _running(process: psutil.Process) -> bool:
    """Alive and not a zombie (exited, not yet reaped by whoever adopted it)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_variable_sets_how_many_processes_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(workers.PROCESSES_ENV, "1")
    assert workers.processes_for(5) == 1
    monkeypatch.setenv(workers.PROCESSES_ENV, "2")
    assert workers.processes_for(5) == 2
    monkeypatch.setenv(workers.PROCESSES_ENV, "many")  # not a number: one per core
    assert workers.processes_for(5) == min(5, len(os.sched_getaffinity(0)))
