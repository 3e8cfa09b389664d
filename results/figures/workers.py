"""Figures drawn side by side in forked processes, where that is safe; in this process otherwise.

Laying out and rendering a figure is pure Python and holds the GIL, so threads would not help;
processes do, one per core. They are forked: a fork starts in milliseconds with matplotlib
already imported, where a fresh interpreter would spend a second or more importing it again.
Forking is safe only from a process with a single thread (a fork copies only the calling
thread, so a lock another thread holds stays held in the child for ever): a notebook's kernel,
or any caller with threads, draws in its own process, as does a machine with one core.

A worker leaves Ctrl-C to its parent, which stops the pool, and exits when its parent is gone,
so a SIGKILL of pairbench leaves no worker behind (docs/architecture.md, "Owning the process
tree"). The files written are the same whichever process draws them.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
PROCESSES_ENV = "PAIRBENCH_FIGURE_PROCESSES"


def processes_for(jobs: int) -> int:
    """How many processes may draw `jobs` figures at once: 1 means this process alone.

    At most one per core, or PROCESSES_ENV's number (1: draw here, e.g. on a machine whose
    cores are busy with other work, where extra processes only add their own start).
    """
    if jobs < 2 or not hasattr(os, "pidfd_open"):  # the parent watch below is Linux's pidfd
        return 1
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if threading.active_count() > 1 or multiprocessing.parent_process() is not None:
        return 1  # other threads (a fork would copy their locks held), or already a worker
    cores = len(os.sched_getaffinity(0))
    wanted = os.environ.get(PROCESSES_ENV, "").strip()
    limit = int(wanted) if wanted.isdigit() and int(wanted) > 0 else cores
    return max(1, min(jobs, cores, limit))


def map_in_order(
    function: Callable[..., T], jobs: Sequence[tuple[Any, ...]], processes: int | None = None
) -> list[T]:
    """`[function(*job) for job in jobs]`, the jobs spread over `processes` forked processes
    (default: processes_for(len(jobs))); a job's exception is raised here."""
    count = processes_for(len(jobs)) if processes is None else min(processes, len(jobs))
    if count < 2:
        return [function(*job) for job in jobs]
    pool = ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )
    try:
        futures: list[Future[T]] = [pool.submit(function, *job) for job in jobs]
        return [future.result() for future in futures]
    finally:
        # On an error or Ctrl-C, figures not yet started are dropped; the workers exit.
        pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(parent: int) -> None:
    """Leave Ctrl-C to the parent; exit as soon as the parent has exited (its pidfd reads)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pidfd = os.pidfd_open(parent)
    except ProcessLookupError:
        os._exit(1)  # already gone

    def watch() -> None:
        select.select([pidfd], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
