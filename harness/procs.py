"""Child processes that are always ended: on return, on error, on Ctrl-C, SIGTERM and SIGKILL.

Every process pairbench starts goes through `spawn` (docs/architecture.md, "Owning the process
tree"). Children get their own session, so a Ctrl-C in the terminal reaches only the
orchestrator, which then stops them in order (the load generator first, the database last).
For run-scoped children the kernel is also asked to signal them if the orchestrator itself dies
without cleaning up (PR_SET_PDEATHSIG), so not even a SIGKILL of pairbench leaves a server
behind. Stopping a child we spawned ends its whole process group too: whatever it started and
left behind (a process pool's fork server, its workers) goes with it, even when the child itself
was killed. `watched` names the run's long-lived children, so a run that loses one stops with
one line naming it and its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from pairbench.errors import InfrastructureError, Interrupted

STOP_TIMEOUT_S = 10.0
KILL_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1
BLAME_GRACE_S = 1.0  # after an error, how long a watched process gets to be seen dead


@dataclass(frozen=True)
class Interpreter:
    """Which Python runs a version of the targets: this one, or a baseline's (docs/architecture.md,
    "The gate"). `env` is added to the environment; `cwd` keeps the interpreter from
    importing `pairbench` out of the folder it was started in."""

    python: str = sys.executable
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None

    def module(self, name: str, *args: str) -> list[str]:
        """argv of `python -m name args...`."""
        return [self.python, "-m", name, *args]

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """This process's environment, then the interpreter's, then `extra`."""
        return {**os.environ, **self.env, **(extra or {})}


CURRENT = Interpreter()


def _pdeathsig(sig: int) -> Callable[[], None]:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    parent = os.getpid()

    def set_it() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), sig)

    return set_it


def spawn(
    argv: Sequence[str],
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    die_with_parent: bool = True,
    parent_death_signal: int = signal.SIGTERM,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = None,
    new_session: bool = True,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start a child in its own session; its stderr (and stdout unless piped) go to `log`.

    The parent-death signal is tied to the thread that forks: spawn run-scoped children from
    the main thread (every caller does). `new_session=False` keeps the child in this process's
    group, so stopping this process's group ends it too (the load agent's local workers).
    `pass_fds`: descriptors the child inherits (the process group's sockets, harness/group.py).
    """
    log_file = open(log, "ab") if log is not None else None  # noqa: SIM115 - closed below
    sink: int | IO[bytes] = log_file if log_file is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=stdout if stdout is not None else sink,
            stderr=sink,
            env=env,
            cwd=cwd,
            user=user,
            start_new_session=new_session,
            preexec_fn=_pdeathsig(parent_death_signal) if die_with_parent else None,
            pass_fds=tuple(pass_fds),
        )
    finally:
        if log_file is not None:
            log_file.close()  # the child holds its own descriptor now


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS says is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True when a process with this PID exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(
    pid: int,
    sig: int = signal.SIGTERM,
    timeout: float = STOP_TIMEOUT_S,
    popen: subprocess.Popen[bytes] | None = None,
) -> None:
    """Send `sig`, wait up to `timeout`, then SIGKILL. Reaps the child when we own it.

    With `popen` (a child `spawn` started: the leader of its own process group) whatever is
    left in its group afterwards is ended too (`stop_group`).
    """
    try:
        if not pid_alive(pid):
            if popen is not None:
                popen.poll()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if _wait(pid, timeout, popen):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait(pid, KILL_TIMEOUT_S, popen)
    finally:
        if popen is not None:
            stop_group(pid)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`, read from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp.
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry))
    return members


def stop_group(pgid: int, timeout: float = KILL_TIMEOUT_S) -> None:
    """End what is left of a process group whose leader we spawned and stopped: SIGTERM, then
    SIGKILL after `timeout`.

    The group's ID is its leader's PID, which the kernel does not hand out again while any
    member of the group lives, so this never reaches a stranger.
    """
    if not group_members(pgid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and group_members(pgid):
        time.sleep(0.02)


def _wait(pid: int, timeout: float, popen: subprocess.Popen[bytes] | None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            if popen.poll() is not None:
                return True
        elif not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def interrupts_unwind() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `Interrupted`, so every `finally` runs and children stop."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, _raise_interrupted)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a cleanup runs, then deliver them."""
    pending: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            raise Interrupted(signal.Signals(pending[0]).name)


@dataclass
class _Watched:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path | None


_WATCHED: list[_Watched] = []


@contextlib.contextmanager
def watched(name: str, popen: subprocess.Popen[bytes], log: Path | None) -> Iterator[None]:
    """While the block runs, `check_watched` reports `name` if its process has exited.

    Leave the block before stopping the process on purpose.
    """
    entry = _Watched(name, popen, log)
    _WATCHED.append(entry)
    try:
        yield
    finally:
        _WATCHED.remove(entry)


def how_it_ended(returncode: int) -> str:
    """ "killed by SIGKILL" or "exited with code 1"."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
        return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def dead_watched(during: str | None = None, grace: float = 0.0) -> str | None:
    """One line naming the first watched process that has exited, how, and its log; or None.

    `grace`: look again for this long. What a death causes (a closed pipe, a refused
    connection) can be seen a moment before the process can be reaped.
    """
    deadline = time.monotonic() + grace
    while True:
        for entry in _WATCHED:
            code = entry.popen.poll()
            if code is not None:
                when = f" during {during}" if during else ""
                where = f"; log: {entry.log}" if entry.log is not None else ""
                ended = how_it_ended(code)
                return f"{entry.name} (pid {entry.popen.pid}) died{when}: {ended}{where}"
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def check_watched(during: str | None = None) -> None:
    """Raise ProcessDied naming a watched process that has exited."""
    dead = dead_watched(during)
    if dead is not None:
        raise ProcessDied(dead)


class ProcessDied(InfrastructureError):
    """A process the run depends on has exited; the message names it and its log."""


def blame_dead(error: BaseException, during: str | None = None) -> None:
    """If a watched process has died, raise ProcessDied naming it (the cause) from `error`."""
    if isinstance(error, ProcessDied | Interrupted | KeyboardInterrupt):
        return
    dead = dead_watched(during, grace=BLAME_GRACE_S)
    if dead is not None:
        raise ProcessDied(dead) from error
