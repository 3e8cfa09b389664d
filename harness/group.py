"""The process group: N uvicorn processes of the targets app on one shared socket, for one pair.

The run's target is one uvicorn process. A pair that compares one process with one per core
(`server.one_process` in the describe document) is served, for its own turn, by a group the
harness starts and stops like the job worker (docs/architecture.md, "The process group"): the
harness binds one listening socket on loopback that every member accepts from (what
`uvicorn --workers N` does) and a private socket per member, and starts each member with
`python -m pairbench.targets.groupmember`, both descriptors inherited. The variants the pair
names go to member 0's private port alone; the others to the shared port.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import procs, server

MEMBER_MODULE = "pairbench.targets.groupmember"
HOST = "127.0.0.1"  # loopback only: the group serves this machine's load generator
BACKLOG = 2048  # uvicorn's default
# Read by the members (targets/groupmember.py), which the harness never imports.
GROUP_PORTS_ENV = "PAIRBENCH_GROUP_PORTS"
GROUP_INDEX_ENV = "PAIRBENCH_GROUP_INDEX"


def processes() -> int:
    """How many members: one per core the OS reports."""
    return os.cpu_count() or 1


@dataclass
class Member:
    """One uvicorn process of the group."""

    index: int
    pid: int
    port: int  # its private port
    log: Path
    popen: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class RunningGroup:
    """The members we started and the sockets we bound for them."""

    shared: socket.socket
    members: list[Member] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    private: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.shared.getsockname()[1]}"

    def target(self, alone: list[str]) -> server.TargetServer:
        """The group as the pair's target: the shared URL, `alone`'s variants at member 0."""
        first = self.members[0]
        return server.TargetServer(
            self.url,
            first.pid,
            first.log,
            self.argv,
            first.popen,
            variant_urls={v: first.url for v in alone},
        )

    def stop(self) -> None:
        """SIGTERM every member by its PID, then close the sockets (their ports are free)."""
        try:
            for member in self.members:
                procs.stop_pid(member.pid, popen=member.popen)
        finally:
            for sock in [self.shared, *self.private]:
                sock.close()

    def watching(self) -> contextlib.ExitStack:
        """Every member watched (procs.watched) until the stack is closed."""
        stack = contextlib.ExitStack()
        for m in self.members:
            stack.enter_context(procs.watched(f"process group member {m.index}", m.popen, m.log))
        return stack

    def describe(self) -> dict[str, Any]:
        """For the run's metadata (docs/run-format.md, `metadata.group`)."""
        return {
            "processes": len(self.members),
            "cpu_count": os.cpu_count(),
            "url": self.url,
            "argv": self.argv[1:],
            "members": [{"pid": m.pid, "port": m.port, "log": str(m.log)} for m in self.members],
        }


def _listening(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def start(
    pairs: list[str],
    pg_dsn: str,
    redis_url: str,
    logs: Path,
    stem: str,
    extra_env: Mapping[str, str] | None = None,
    count: int | None = None,
    *,
    interpreter: procs.Interpreter = procs.CURRENT,
) -> RunningGroup:
    """Start `count` members (one per core by default) serving `pairs` alone, and wait until
    each answers /healthz on its private port; every one started is stopped if another fails."""
    count = count or processes()
    group = RunningGroup(_listening())
    try:
        group.private = [_listening() for _ in range(count)]
        ports = [s.getsockname()[1] for s in group.private]
        env = server.environment(pg_dsn, redis_url, HOST, extra_env, interpreter)
        env[GROUP_PORTS_ENV] = ",".join(str(p) for p in ports)
        env[server.SERVE_PAIRS_ENV] = ",".join(pairs)  # the members serve the group's pairs alone
        for index, private in enumerate(group.private):
            argv = [
                *interpreter.module(MEMBER_MODULE),
                "--shared-fd",
                str(group.shared.fileno()),
                "--private-fd",
                str(private.fileno()),
                *server.UVICORN_ARGS,
            ]
            log = logs / f"{stem}-group-{index}.log"
            popen = procs.spawn(
                argv,
                log=log,
                env={**env, GROUP_INDEX_ENV: str(index)},
                cwd=interpreter.cwd,
                pass_fds=(group.shared.fileno(), private.fileno()),
            )
            group.members.append(Member(index, popen.pid, ports[index], log, popen))
            group.argv = argv
        for m in group.members:
            server.wait_healthy(m.url, m.alive, m.log, f"process group member {m.index}")
        return group
    except BaseException:
        group.stop()
        raise


@contextlib.contextmanager
def provide(
    pairs: list[str],
    pg_dsn: str,
    redis_url: str,
    logs: Path,
    stem: str,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[RunningGroup]:
    """The group for the block, stopped however it ends (Ctrl-C included)."""
    group = start(pairs, pg_dsn, redis_url, logs, stem, extra_env)
    try:
        yield group
    finally:
        with procs.deferred_interrupts():
            group.stop()
