"""CPU isolation on one machine: the load generator, the target and the databases on disjoint CPUs.

On one machine the processes of a run share its cores: a busy load generator takes CPU from the
target it measures, and the scheduler moves both around. Pinning each role to its own CPU set
(`os.sched_setaffinity`) keeps them apart. A process inherits its parent's affinity when it is
spawned, so the orchestrator pins the thread that spawns a role's processes for as long as it
spawns them (`Pins.role`), and everything they start later (PostgreSQL's backends, locust's
local workers) stays in the set too. The orchestrator itself is never pinned.

`auto` pins only where the roles get CPUs of their own (AUTO_MIN_CPUS): on 2 CPUs, pinning
widened each run's intervals and did not measurably narrow the run-to-run spread
(docs/architecture.md, "CPU isolation", has the figures and the command to measure again).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MODES = ("auto", "on", "off")
ROLES = ("load", "target", "services")
# auto pins from here: a third of the CPUs (at least one) each for the load generator and the
# databases, the rest (at least two) for the target. Below, pinning is measured, not assumed.
AUTO_MIN_CPUS = 4


@dataclass
class Pins:
    """Which CPUs each role's processes run on; empty when nothing is pinned."""

    mode: str
    available: list[int]
    sets: dict[str, list[int]] = field(default_factory=dict)
    reason: str = ""

    @property
    def applied(self) -> bool:
        return bool(self.sets)

    @contextlib.contextmanager
    def role(self, name: str) -> Iterator[None]:
        """Spawn `name`'s processes inside this block: they inherit its CPU set.

        Only the calling thread is pinned (pid 0 is the thread on Linux), and only for the
        block: the orchestrator's other threads, and its later work, run anywhere.
        """
        cpus = self.sets.get(name)
        if not cpus:
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpus)
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)

    def describe(self) -> dict[str, Any]:
        """For run.json's metadata.pinning (docs/run-format.md)."""
        return {
            "mode": self.mode,
            "applied": self.applied,
            "available": self.available,
            "cpus": dict(self.sets),
            "reason": self.reason,
        }


def split(cpus: list[int]) -> dict[str, list[int]]:
    """Disjoint sets: load first, databases last, the target the rest; two CPUs: load | rest."""
    if len(cpus) < 2:
        return {}
    if len(cpus) == 2:
        return {"load": cpus[:1], "target": cpus[1:], "services": cpus[1:]}
    third = max(1, len(cpus) // 3)
    return {"load": cpus[:third], "target": cpus[third:-third], "services": cpus[-third:]}


def plan(mode: str, available: list[int] | None = None) -> Pins:
    """The run's pinning for `--pin MODE` on the CPUs this process may use."""
    if mode not in MODES:
        raise ValueError(f"pin mode {mode!r}: expected one of {', '.join(MODES)}")
    cpus = sorted(available if available is not None else os.sched_getaffinity(0))
    if mode == "off":
        return Pins(mode, cpus, reason="--pin off")
    if mode == "auto" and len(cpus) < AUTO_MIN_CPUS:
        return Pins(mode, cpus, reason=f"{len(cpus)} CPU(s): auto pins from {AUTO_MIN_CPUS}")
    sets = split(cpus)
    if not sets:
        return Pins(mode, cpus, reason=f"{len(cpus)} CPU: nothing to split")
    shared = " (target and databases share)" if sets["target"] == sets["services"] else ""
    return Pins(mode, cpus, sets, reason=f"{len(cpus)} CPUs split{shared}")
