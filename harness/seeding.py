"""Seed the pairs a run includes, through the targets' entry point (a subprocess, never an import).

docs/architecture.md, "Seeding": `python -m pairbench.targets seed --profile P --pair A --pair B
[--seed N]` with PAIRBENCH_PG_DSN in its environment prints one JSON line per pair,
`{"pair", "skipped", "seconds", "rows", "identity"}`. Only the pairs being run are named, so a
run (or a verify) of one pair never creates or rebuilds another pair's tables.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pairbench.errors import EXIT_USAGE, InfrastructureError, UsageError

from . import catalogue
from .catalogue import TARGETS_MODULE, Catalogue
from .procs import CURRENT, Interpreter

DSN_ENV = "PAIRBENCH_PG_DSN"
SEED_TIMEOUT_S = 3600.0  # the talk profile's million-row tables take minutes on a laptop
# Where `seed` records each pair's dataset identity (targets/seeding.py's META_TABLE; a test
# holds the two equal).
META_TABLE = "pairbench_dataset"
CONNECT_TIMEOUT_S = 10


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


def _seed_argv(
    interpreter: Interpreter, profile: str, pairs: list[str], data_seed: int | None
) -> list[str]:
    argv = interpreter.module(TARGETS_MODULE, "seed", "--profile", profile)
    for name in pairs:
        argv += ["--pair", name]
    if data_seed is not None:
        argv += ["--seed", str(data_seed)]
    return argv


def _call(
    argv: list[str], env: dict[str, str], cwd: Path | None
) -> subprocess.CompletedProcess[str]:
    """Run the entry point; a usage error (exit 2) or any other failure in one line."""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=SEED_TIMEOUT_S,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InfrastructureError(f"{TARGETS_MODULE} seed: {e}") from e
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    if done.returncode == EXIT_USAGE:
        raise UsageError(last)
    if done.returncode != 0:
        raise InfrastructureError(f"{TARGETS_MODULE} seed exited {done.returncode}: {last}")
    return done


def plan(
    profile: str,
    pairs: list[str],
    data_seed: int | None = None,
    interpreter: Interpreter = CURRENT,
) -> dict[str, dict[str, Any]] | None:
    """Each pair's dataset identity as `seed` would store it, touching no database; None when
    that version of the targets has no `seed --plan` (older than the interleaved gate)."""
    if not pairs:
        return {}
    argv = [*_seed_argv(interpreter, profile, pairs, data_seed), "--plan"]

    def ask() -> dict[str, dict[str, Any]] | None:
        try:
            done = _call(argv, interpreter.environ(), interpreter.cwd)
        except UsageError as e:
            if "--plan" in str(e):  # argparse: unrecognized arguments: --plan
                return None
            raise
        try:
            lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
            return {str(one["pair"]): dict(one["identity"]) for one in lines}
        except (ValueError, KeyError, TypeError) as e:
            raise InfrastructureError(
                f"{TARGETS_MODULE} seed --plan: unreadable output ({e})"
            ) from e

    # Touching no database, the plan depends on the targets' sources alone: kept between
    # commands like their documents, one pair at a time (catalogue.stored and keep).
    if interpreter is not CURRENT:  # a baseline's targets are always asked
        return ask()
    planned = _kept_plan(profile, pairs, data_seed)
    if planned is None:
        planned = ask()
        _keep_plan(profile, data_seed, planned)
    return planned


def _plan_args(profile: str, pair: str, data_seed: int | None) -> list[str]:
    """`seed --plan` for one pair, as the targets module takes it (the key of its kept answer)."""
    seed = [] if data_seed is None else ["--seed", str(data_seed)]
    return ["seed", "--profile", profile, "--pair", pair, *seed, "--plan"]


def _kept_plan(
    profile: str, pairs: list[str], data_seed: int | None
) -> dict[str, dict[str, Any]] | None:
    """This checkout's identities of `pairs`, all kept; None when one is not (nothing asked)."""
    environ = CURRENT.environ()
    found = {
        n: catalogue.stored(_plan_args(profile, n, data_seed), environ, CURRENT) for n in pairs
    }
    if any(not isinstance(identity, dict) for identity in found.values()):
        return None
    return found


def _keep_plan(
    profile: str, data_seed: int | None, identities: Mapping[str, dict[str, Any]] | None
) -> None:
    environ = CURRENT.environ()
    for name, identity in (identities or {}).items():
        catalogue.keep(_plan_args(profile, name, data_seed), environ, CURRENT, identity)


def already_seeded(
    dsn: str, profile: str, pairs: list[str], data_seed: int | None = None
) -> dict[str, PairDataset] | None:
    """Each pair's dataset, when every one is as `seed` would leave it unchanged: its stored
    identity is the planned one and all its tables exist (targets/seeding.py's own test);
    read over one connection, with no interpreter started. None when any is not, or the
    database cannot say: `seed` then decides, under its lock, and seeds what it must.

    The seed subprocess imports every pair (0.66 s here) to find, on most runs, that nothing
    needs seeding. The identities are the ones kept from an earlier `seed` or `seed --plan` of
    this checkout (never asked here: a dataset never seeded costs no more than before), so this
    costs one connection.
    """
    started = time.perf_counter()
    planned = _kept_plan(profile, pairs, data_seed)
    if planned is None:
        return None
    try:
        described = catalogue.describe()
    except (UsageError, InfrastructureError):  # `seed` says it, in its words
        return None
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            if conn.execute("SELECT to_regclass(%s)", (META_TABLE,)).fetchone() in (None, (None,)):
                return None
            stored: dict[str, Any] = dict(
                conn.execute(
                    sql.SQL("SELECT pair, identity FROM {} WHERE pair = ANY(%s)").format(
                        sql.Identifier(META_TABLE)
                    ),
                    (pairs,),
                ).fetchall()
            )
            found: dict[str, PairDataset] = {}
            for name in pairs:
                tables = [str(t) for t in described.pairs.get(name, {}).get("tables") or []]
                if not tables or stored.get(name) != planned[name]:
                    return None
                present = conn.execute(
                    "SELECT bool_and(to_regclass(n) IS NOT NULL) FROM unnest(%s::text[]) AS n",
                    (tables,),
                ).fetchone()
                if present != (True,):
                    return None
                rows = {}
                for table in tables:
                    counted = conn.execute(
                        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                    ).fetchone()
                    rows[table] = int(counted[0]) if counted else 0
                found[name] = PairDataset(
                    name, True, time.perf_counter() - started, rows, planned[name]
                )
            return found
    except psycopg.Error:
        return None


def seed(
    dsn: str,
    profile: str,
    pairs: list[str],
    data_seed: int | None = None,
    interpreter: Interpreter = CURRENT,
) -> dict[str, PairDataset]:
    """Seed `pairs` for `profile`; by pair name. Nothing is run for an empty list."""
    if not pairs:
        return {}
    if interpreter is CURRENT:
        seeded = already_seeded(dsn, profile, pairs, data_seed)
        if seeded is not None:
            return seeded
    argv = _seed_argv(interpreter, profile, pairs, data_seed)
    done = _call(argv, interpreter.environ({DSN_ENV: dsn}), interpreter.cwd)
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
    if interpreter is CURRENT:  # its lines carry what `seed --plan` would print
        _keep_plan(profile, data_seed, {n: d.identity for n, d in found.items()})
    return found
