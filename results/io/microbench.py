"""Reading pytest-benchmark's saved JSON: the micro suite's results (docs/run-format.md,
"Micro benchmarks: pytest-benchmark's JSON").

A saved file holds `machine_info`, `commit_info`, `datetime` and, per benchmark, its name,
group, `extra_info` and `stats` (with `--benchmark-save-data`, `stats.data`: every round's time
per call, in seconds). The micro suite (benchmarks/micro/) adds pair, variant, role and knob to
`extra_info`, and pairbench's own machine and git description under `machine_info.pairbench`
and `commit_info.pairbench`, so a stored run's metadata can be matched field for field. A file
is recognised by its content, never its name; anything unusable is an input error (exit 2) in
one line naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pairbench.errors import EXIT_USAGE, PairbenchError

MICRO_STORAGE = "micro"  # the micro suite's storage folder, under the state folder
# The keys that make a JSON document pytest-benchmark's saved file (and not a run.json).
MICRO_KEYS = ("benchmarks", "machine_info", "commit_info")
# The machine fields a stored run and a micro file must agree on (run.json metadata.machine).
MACHINE_FIELDS = ("hostname", "cpu_model", "cores", "memory_bytes", "kernel")
SHORT_COMMIT = 10  # characters of a commit shown in a message
SAVE_DATA_HINT = "save with --benchmark-save-data"


class MicroFileError(PairbenchError):
    """A micro result file is unreadable or lacks what is asked of it; one line, exit 2."""

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class MicroBenchmark:
    """One benchmark of a saved file: its identity, its median and, when saved, its rounds."""

    name: str
    pair: str  # extra_info's pair, else pytest-benchmark's group, else the name
    variant: str  # extra_info's variant, else the name
    role: str | None  # bad, middle, good (the micro suite's extra_info), else None
    knob_name: str | None
    knob: float | None  # the knob value the core ran at; None when the knob is the load's
    median_s: float
    rounds: int
    iterations: int
    data: tuple[float, ...] | None  # seconds per call, one per round; None unless saved

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies a benchmark across two files: pair, variant and knob text."""
        return (self.pair, self.variant, self.knob_text)

    @property
    def knob_text(self) -> str:
        """`n=200`, or `–` for a core whose knob is the load's."""
        if self.knob is None:
            return "–"
        value = int(self.knob) if float(self.knob).is_integer() else self.knob
        return f"{self.knob_name or 'knob'}={value}"


@dataclass(frozen=True)
class MicroFile:
    """A saved pytest-benchmark file: where it is from and its benchmarks."""

    path: Path
    commit: str | None
    dirty: bool | None
    machine: Mapping[str, Any]  # the MACHINE_FIELDS, from pairbench's record or pytest-benchmark's
    saved_at: str  # pytest-benchmark's `datetime` (ISO 8601, UTC)
    benchmarks: tuple[MicroBenchmark, ...]

    @property
    def label(self) -> str:
        """The file's name, as gate.md and the tables show it."""
        return self.path.name

    def require_data(self) -> None:
        """Every benchmark carries its rounds, or a MicroFileError saying how to save them."""
        for bench in self.benchmarks:
            if bench.data is None:
                raise MicroFileError(
                    f"{self.path}: benchmark {bench.name!r} has no per-round timings "
                    f"(stats.data): {SAVE_DATA_HINT}"
                )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def is_micro_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a file holding pytest-benchmark's saved JSON (judged by content)."""
    target = Path(path)
    if not target.is_file():
        return False
    doc = _read_json(target)
    return isinstance(doc, dict) and all(key in doc for key in MICRO_KEYS)


def load_micro(path: str | os.PathLike[str]) -> MicroFile:
    """A saved pytest-benchmark file, or MicroFileError naming the file and the problem."""
    target = Path(path)
    if not target.is_file():
        raise MicroFileError(f"{target}: no such file")
    doc = _read_json(target)
    if not isinstance(doc, dict) or not all(key in doc for key in MICRO_KEYS):
        raise MicroFileError(
            f"{target}: not pytest-benchmark's saved JSON (needs {', '.join(MICRO_KEYS)})"
        )
    if not isinstance(doc["benchmarks"], list):
        raise MicroFileError(f"{target}: `benchmarks` is not a list")
    benchmarks = tuple(_benchmark(target, i, b) for i, b in enumerate(doc["benchmarks"]))
    commit_info = doc["commit_info"] if isinstance(doc["commit_info"], dict) else {}
    ours = commit_info.get("pairbench") if isinstance(commit_info.get("pairbench"), dict) else None
    # pairbench's own record (the git() a run stores) first: its `dirty` counts untracked
    # files, as run.json's does; pytest-benchmark's `git describe --dirty` does not.
    source = ours or commit_info
    commit = source.get("commit", source.get("id"))
    return MicroFile(
        path=target,
        commit=str(commit) if commit not in (None, "unversioned") else None,
        dirty=None if source.get("dirty") is None else bool(source.get("dirty")),
        machine=_machine(doc["machine_info"]),
        saved_at=str(doc.get("datetime") or ""),
        benchmarks=benchmarks,
    )


def _machine(info: Any) -> dict[str, Any]:
    """The MACHINE_FIELDS: pairbench's record when the micro suite added it, else mapped from
    pytest-benchmark's own fields (node, the processor's brand and count, release)."""
    if not isinstance(info, dict):
        return {}
    ours = info.get("pairbench")
    if isinstance(ours, dict):
        return {field: ours.get(field) for field in MACHINE_FIELDS}
    # py-cpuinfo's record: the nested object that carries `brand_raw`.
    cpu = next((v for v in info.values() if isinstance(v, dict) and "brand_raw" in v), {})
    return {
        "hostname": info.get("node"),
        "cpu_model": cpu.get("brand_raw"),
        "cores": cpu.get("count"),
        "memory_bytes": None,  # pytest-benchmark does not record it
        "kernel": info.get("release"),
    }


def _benchmark(path: Path, index: int, bench: Any) -> MicroBenchmark:
    where = f"{path}: benchmarks[{index}]"
    if not isinstance(bench, dict) or not isinstance(bench.get("stats"), dict):
        raise MicroFileError(f"{where}: no `stats` object")
    name = str(bench.get("name") or bench.get("fullname") or f"#{index}")
    stats = bench["stats"]
    extra: dict[str, Any] = bench["extra_info"] if isinstance(bench.get("extra_info"), dict) else {}
    data = stats.get("data")
    timings: tuple[float, ...] | None = None
    if data is not None:
        if not isinstance(data, list) or not data or not all(_positive(v) for v in data):
            raise MicroFileError(f"{where} ({name}): `stats.data` is not a list of positive times")
        timings = tuple(float(v) for v in data)
    median = stats.get("median")
    if not _positive(median):
        raise MicroFileError(f"{where} ({name}): `stats.median` is not a positive number")
    knob = extra.get("knob")
    if knob is not None and not isinstance(knob, (int, float)):
        raise MicroFileError(f"{where} ({name}): extra_info.knob {knob!r} is not a number")
    return MicroBenchmark(
        name=name,
        pair=str(extra.get("pair") or bench.get("group") or name),
        variant=str(extra.get("variant") or name),
        role=str(extra["role"]) if extra.get("role") else None,
        knob_name=str(extra["knob_name"]) if extra.get("knob_name") else None,
        knob=None if knob is None else float(knob),
        median_s=float(median),
        rounds=int(stats.get("rounds") or (len(timings) if timings else 0)),
        iterations=int(stats.get("iterations") or 1),
        data=timings,
    )


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def micro_files(source: str | os.PathLike[str]) -> list[Path]:
    """The saved files under a storage folder (pytest-benchmark's `<machine id>/NNNN_*.json`),
    or the one file given; a folder's other JSON files are skipped, not refused."""
    target = Path(source)
    if target.is_file():
        return [target]
    if not target.is_dir():
        return []
    return sorted(p for p in target.rglob("*.json") if is_micro_file(p))


def machine_differences(run_machine: Mapping[str, Any], micro: MicroFile) -> list[str]:
    """The machine fields on which a run and a micro file disagree (unknown on both: ignored)."""
    differ = []
    for field in MACHINE_FIELDS:
        ours, theirs = run_machine.get(field), micro.machine.get(field)
        if ours is None or theirs is None:
            continue
        if str(ours) != str(theirs):
            differ.append(f"{field} {theirs} (the run: {ours})")
    return differ


@dataclass(frozen=True)
class Match:
    """The micro file for a run's commit and machine, or why there is none (one line)."""

    file: MicroFile | None
    reason: str


def match_run(
    metadata: Mapping[str, Any], sources: Sequence[Path], where: str | os.PathLike[str]
) -> Match:
    """The newest micro file saved at the run's commit, clean, on the run's machine."""
    git = metadata.get("git") or {}
    commit = git.get("commit")
    if not commit:
        return Match(None, "no micro result for this commit and machine: the run has no commit")
    short = str(commit)[:SHORT_COMMIT]
    if git.get("dirty"):
        return Match(
            None,
            f"no micro result for this commit and machine: the run's tree ({short}) had local "
            "changes, so no micro result can be tied to its code",
        )
    files = [load_micro(p) for p in sources]
    if not files:
        return Match(None, f"no micro result for this commit and machine: none in {where}")
    same_commit = [f for f in files if f.commit == commit]
    if not same_commit:
        seen = sorted({(f.commit or "unversioned")[:SHORT_COMMIT] for f in files})
        return Match(
            None,
            f"no micro result for this commit and machine: {len(files)} in {where}, for "
            f"commit{'s' if len(seen) > 1 else ''} {', '.join(seen)}, none for {short}",
        )
    clean = [f for f in same_commit if f.dirty is False]
    if not clean:
        return Match(
            None,
            f"no micro result for this commit and machine: the {len(same_commit)} for {short} "
            "were saved from a tree with local changes",
        )
    machine = metadata.get("machine") or {}
    here = [f for f in clean if not machine_differences(machine, f)]
    if not here:
        differ = machine_differences(machine, clean[-1])
        return Match(
            None,
            f"no micro result for this commit and machine: the {len(clean)} for {short} are "
            f"from another machine ({'; '.join(differ)})",
        )
    newest = max(here, key=lambda f: (f.saved_at, f.path.name))
    return Match(newest, f"`{newest.label}` (saved {newest.saved_at}), commit {short}")
