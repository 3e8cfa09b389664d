"""Stored runs for a history: found in folders, loaded, grouped by machine and profile, ordered.

A history never mixes machines or profiles on one line: absolute latencies, and to a lesser
degree ratios, depend on both (docs/architecture.md, History).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..io.runfile import RUN_FILE, RunFileError, load_run, run_file_path

UNKNOWN_MACHINE = "unknown machine"
SHORT_COMMIT = 7  # hex digits of a commit shown in tables and on axes


@dataclass(frozen=True)
class StoredRun:
    """One loaded run and what a history orders and groups it by."""

    path: Path  # its run.json
    run: Mapping[str, Any]
    started_at: datetime
    machine: str  # the machine key (`machine_key`)
    profile: str

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.run["run_id"])

    @property
    def git(self) -> Mapping[str, Any]:
        """`metadata.git`: commit, dirty and (newer runs) commit_date; empty when not recorded."""
        git = (self.run.get("metadata") or {}).get("git")
        return git if isinstance(git, Mapping) else {}

    @property
    def commit(self) -> str | None:
        """The full commit hash, or None outside a checkout."""
        commit = self.git.get("commit")
        return str(commit) if commit else None

    @property
    def dirty(self) -> bool:
        """True when the checkout had local changes."""
        return self.git.get("dirty") is True

    @property
    def commit_date(self) -> str | None:
        """The committer date as stored (ISO 8601), when the run recorded it."""
        date = self.git.get("commit_date")
        return str(date) if date else None

    def short_commit(self) -> str | None:
        """e.g. `8d1e30d` or `8d1e30d+dirty`; None without a commit."""
        if self.commit is None:
            return None
        return self.commit[:SHORT_COMMIT] + ("+dirty" if self.dirty else "")


@dataclass(frozen=True)
class RunGroup:
    """Runs of one machine and one profile, oldest first."""

    machine: str
    profile: str
    runs: tuple[StoredRun, ...]

    @property
    def name(self) -> str:
        """For people: `vm · AMD EPYC · 2 cores, profile quick`."""
        return f"{self.machine}, profile {self.profile}"


def find_run_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The run.json of each argument: a run folder, a run.json, or a folder of run folders
    (one level down; subfolders without run.json are skipped). Each file once, in order."""
    found: dict[Path, None] = {}
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise RunFileError(path, "no such file or folder")
        if path.is_file() or (path / RUN_FILE).is_file():
            found[run_file_path(path).resolve()] = None
            continue
        inside = sorted(child / RUN_FILE for child in path.iterdir() if child.is_dir())
        runs = [file for file in inside if file.is_file()]
        if not runs:
            raise RunFileError(path, f"no {RUN_FILE} in it or in its subfolders")
        found.update((file.resolve(), None) for file in runs)
    return list(found)


def load_runs(files: Iterable[Path]) -> list[StoredRun]:
    """Load each run (RunFileError names a bad file) with its start time and group keys."""
    loaded = []
    for file in files:
        run = load_run(file)
        loaded.append(
            StoredRun(
                path=file,
                run=run,
                started_at=_started_at(file, run),
                machine=machine_key(run),
                profile=str(run["profile"]),
            )
        )
    return loaded


def group_runs(runs: Iterable[StoredRun]) -> list[RunGroup]:
    """One group per (machine, profile), runs ordered by start time (then run id); groups in the
    order of their first run."""
    ordered = sorted(runs, key=lambda r: (r.started_at, r.run_id))
    groups: dict[tuple[str, str], list[StoredRun]] = {}
    for run in ordered:
        groups.setdefault((run.machine, run.profile), []).append(run)
    return [
        RunGroup(machine, profile, tuple(members)) for (machine, profile), members in groups.items()
    ]


def machine_key(run: Mapping[str, Any]) -> str:
    """Hostname, CPU model and logical cores from `metadata.machine`, as far as recorded."""
    machine = (run.get("metadata") or {}).get("machine") or {}
    parts = [str(machine[k]) for k in ("hostname", "cpu_model") if machine.get(k)]
    if machine.get("cores"):
        parts.append(f"{machine['cores']} cores")
    return " · ".join(parts) or UNKNOWN_MACHINE


def _started_at(file: Path, run: Mapping[str, Any]) -> datetime:
    text = str(run["started_at"])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RunFileError(file, f"started_at {text!r} is not an ISO 8601 time") from None
    # Naive times are UTC, as the engine writes them.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
