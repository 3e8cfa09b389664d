"""CPU isolation (harness/pinning.py): disjoint sets, the auto rule, and real inheritance."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pairbench.harness import pinning

SHOW_AFFINITY = "import json, os; print(json.dumps(sorted(os.sched_getaffinity(0))))"


@pytest.mark.parametrize("count", [2, 3, 4, 6, 8, 16, 64])
def test_split_gives_every_role_cpus_and_keeps_load_apart(count: int) -> None:
    cpus = list(range(100, 100 + count))
    sets = pinning.split(cpus)
    assert set(sets) == set(pinning.ROLES)
    assert all(sets[role] for role in pinning.ROLES)
    assert set(sets["load"]).isdisjoint(sets["target"] + sets["services"])
    assert set().union(*sets.values()) == set(cpus)  # no CPU left idle
    if count >= pinning.AUTO_MIN_CPUS:  # three sets of their own, the target the largest
        assert set(sets["target"]).isdisjoint(sets["services"])
        assert len(sets["target"]) >= max(len(sets["load"]), len(sets["services"]))


def test_one_cpu_is_never_split() -> None:
    assert pinning.split([0]) == {}
    pins = pinning.plan("on", [0])
    assert not pins.applied and "nothing to split" in pins.reason


@pytest.mark.parametrize(
    ("mode", "count", "applied"),
    [
        ("auto", pinning.AUTO_MIN_CPUS - 1, False),
        ("auto", pinning.AUTO_MIN_CPUS, True),
        ("on", 2, True),
        ("off", 16, False),
    ],
)
def test_plan(mode: str, count: int, applied: bool) -> None:
    pins = pinning.plan(mode, list(range(count)))
    described = pins.describe()
    assert described["applied"] is applied and described["mode"] == mode
    assert described["available"] == list(range(count))
    assert bool(described["cpus"]) is applied and described["reason"]


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="expected one of auto, on, off"):
        pinning.plan("sometimes", [0, 1])


def _child_affinity() -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", SHOW_AFFINITY], capture_output=True, text=True, check=True
    )
    return list(json.loads(out.stdout))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to pin apart")
def test_processes_spawned_in_a_role_inherit_its_set_and_the_caller_is_restored() -> None:
    before = os.sched_getaffinity(0)
    pins = pinning.plan("on", sorted(before))
    for role in pinning.ROLES:
        with pins.role(role):
            assert _child_affinity() == pins.sets[role]
        assert os.sched_getaffinity(0) == before
    assert _child_affinity() == sorted(before)  # spawned outside a role: anywhere


def test_role_restores_the_affinity_when_the_block_raises() -> None:
    before = os.sched_getaffinity(0)
    pins = pinning.plan("on", sorted(before))
    with pytest.raises(RuntimeError), pins.role("load"):
        raise RuntimeError("spawn failed")
    assert os.sched_getaffinity(0) == before


def test_nothing_pinned_leaves_children_anywhere() -> None:
    before = sorted(os.sched_getaffinity(0))
    with pinning.plan("off").role("target"):
        assert _child_affinity() == before
