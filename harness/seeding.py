"""Seed the pairs a run includes, through the targets' entry point (a subprocess, never an import).

docs/architecture.md, "Seeding": `python -m pairbench.targets seed --profile P --pair A --pair B
[--seed N]` with PAIRBENCH_PG_DSN in its environment prints one JSON line per pair,
`{"pair", "skipped", "seconds", "rows", "identity"}`. Only the pairs being run are named, so a
run (or a verify) of one pair never creates or rebuilds another pair's tables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pairbench.errors import EXIT_USAGE, InfrastructureError, UsageError

from .catalogue import TARGETS_MODULE, Catalogue

DSN_ENV = "PAIRBENCH_PG_DSN"
SEED_TIMEOUT_S = 3600.0  # the talk profile's million-row tables take minutes on a laptop


@dataclass(frozen=True)
class PairDataset:
    """What seeding did for one pair; stored as the pair record's `dataset`."""

    pair: str
    skipped: bool
    seconds: float
    rows: dict[str, int]
    identity: dict[str, Any]

    @property
    def sizes(self) -> dict[str, int]:
        return dict(self.identity.get("sizes") or {})

    def record(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "sizes": self.sizes,
            "seconds": self.seconds,
            "skipped": self.skipped,
            "rows": self.rows,
        }


def seedable(catalogue: Catalogue, names: list[str]) -> list[str]:
    """The named pairs the catalogue knows and that own tables: the only ones to seed."""
    return [n for n in names if catalogue.pairs.get(n, {}).get("tables")]


def check_sizes(
    catalogue: Catalogue, profile: str, expected: Mapping[str, Mapping[str, int]]
) -> None:
    """A replay needs today's sizes to be the stored run's: else a usage error naming the pair."""
    for name, stored in expected.items():
        today = dict((catalogue.pairs.get(name, {}).get("sizes") or {}).get(profile) or {})
        if dict(stored) != today:
            raise UsageError(
                f"pair {name!r}: sizes for profile {profile!r} are now {today}, the stored run"
                f" had {dict(stored)}: the data would differ"
            )


def seed(
    dsn: str, profile: str, pairs: list[str], data_seed: int | None = None
) -> dict[str, PairDataset]:
    """Seed `pairs` for `profile`; by pair name. Nothing is run for an empty list."""
    if not pairs:
        return {}
    argv = [sys.executable, "-m", TARGETS_MODULE, "seed", "--profile", profile]
    for name in pairs:
        argv += ["--pair", name]
    if data_seed is not None:
        argv += ["--seed", str(data_seed)]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=SEED_TIMEOUT_S,
            env={**os.environ, DSN_ENV: dsn},
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InfrastructureError(f"{TARGETS_MODULE} seed: {e}") from e
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    if done.returncode == EXIT_USAGE:
        raise UsageError(last)
    if done.returncode != 0:
        raise InfrastructureError(f"{TARGETS_MODULE} seed exited {done.returncode}: {last}")
    found: dict[str, PairDataset] = {}
    for line in done.stdout.splitlines():
        if not line.strip():
            continue
        try:
            one = json.loads(line)
            found[one["pair"]] = PairDataset(
                str(one["pair"]),
                bool(one["skipped"]),
                float(one["seconds"]),
                {str(k): int(v) for k, v in one["rows"].items()},
                dict(one["identity"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise InfrastructureError(
                f"{TARGETS_MODULE} seed: unreadable line {line[:80]!r}"
            ) from e
    missing = [n for n in pairs if n not in found]
    if missing:
        raise InfrastructureError(f"{TARGETS_MODULE} seed printed nothing for pair {missing[0]!r}")
    return found
