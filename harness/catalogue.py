"""What the harness knows of the pairs: the targets' describe document joined with the scenarios.

The harness never imports the targets (docs/architecture.md, "Layers"): it runs
`python -m pairbench.targets describe` as a subprocess, or reads `GET /pairs` from a running
target; both give the same document ("What the targets describe"). A scenario for a user's own
service that serves no such document lists its variants and knob itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pairbench.errors import EXIT_USAGE, InfrastructureError, UsageError

from .procs import CURRENT, Interpreter
from .scenario import KnobSpec, Scenario

TARGETS_MODULE = "pairbench.targets"
DESCRIBE_TIMEOUT_S = 60.0
FETCH_TIMEOUT_S = 10.0
EQUIVALENCE_RULES = ("json", "bytes", "decoded", "jsonlines", "not_modified", "side_effect")
DEFAULT_RULE = "json"
# A service of your own compares each step's status only, unless its scenario asks for more
# (docs/architecture.md, "Your own service"); harness/verify.py then compares no bodies.
STATUS_ONLY = "status"


@dataclass(frozen=True)
class Catalogue:
    """The describe document: counters by name, pairs by name."""

    counters: dict[str, dict[str, Any]] = field(default_factory=dict)
    pairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: str | None = None
    slowdown: dict[str, float] = field(default_factory=dict)  # an injected one, "pair/variant"

    @classmethod
    def from_document(cls, doc: Any, where: str) -> Catalogue:
        """Validate the document's shape just enough to fail with one line naming `where`."""
        if not isinstance(doc, dict) or not isinstance(doc.get("pairs"), list):
            raise InfrastructureError(f"{where}: not a describe document (no 'pairs' list)")
        counters = doc.get("counters") or {}
        if not isinstance(counters, dict):
            raise InfrastructureError(f"{where}: 'counters' is not an object")
        pairs = {str(p["name"]): p for p in doc["pairs"] if isinstance(p, dict) and "name" in p}
        slowdown = {str(k): float(v) for k, v in (doc.get("slowdown") or {}).items()}
        return cls(counters, pairs, doc.get("pairbench"), slowdown)

    def max_connections(self, names: list[str]) -> int | None:
        """The largest PostgreSQL max_connections any of the named pairs declares."""
        wanted = [
            int(need)
            for name in names
            if (need := _dig(self.pairs.get(name), "server", "postgres", "max_connections"))
            is not None
        ]
        return max(wanted) if wanted else None

    def needs_downstream(self, names: list[str]) -> bool:
        """Whether any of the named pairs calls the downstream service (`server.downstream`)."""
        return any(_dig(self.pairs.get(name), "server", "downstream") is True for name in names)

    def worker_pairs(self, names: list[str]) -> list[str]:
        """The named pairs whose jobs run in the job worker (`server.worker`)."""
        return [n for n in names if _dig(self.pairs.get(n), "server", "worker") is True]

    def group_pairs(self, names: list[str]) -> dict[str, list[str]]:
        """The named pairs served by the process group, each with its variants served by one
        process alone (`server.one_process`, docs/architecture.md, "The process group")."""
        found: dict[str, list[str]] = {}
        for n in names:
            alone = _dig(self.pairs.get(n), "server", "one_process")
            if isinstance(alone, list) and alone:
                found[n] = [str(v) for v in alone]
        return found

    def counter_specs(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """The catalogue entries of `names` (unknown names left out)."""
        return {n: self.counters[n] for n in names if n in self.counters}


def _dig(doc: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


_ANSWERS: dict[tuple[Any, ...], Any] = {}
# What the targets' describe and openapi depend on besides the command line and the folder:
# the pairs loaded (PAIRBENCH_PAIRS), an injected slowdown, the interpreter's search path; not
# where the servers and scenarios are, so a command's checks and its run share one answer.
_NOT_READ = (
    "PAIRBENCH_PG_DSN",
    "PAIRBENCH_REDIS_URL",
    "PAIRBENCH_STATE_DIR",
    "PAIRBENCH_SCENARIOS",
)


def _read_by_targets(name: str) -> bool:
    if name in _NOT_READ:
        return False
    return name.startswith(("PAIRBENCH_", "PYTHON")) or name in ("PATH", "VIRTUAL_ENV")


def _answer_key(
    command: str | Sequence[str], environ: Mapping[str, str], interpreter: Interpreter
) -> tuple[Any, ...]:
    """What an answer of `python -m pairbench.targets COMMAND` depends on: the command line, the
    variables the targets read and the folder."""
    args = [command] if isinstance(command, str) else list(command)
    return (
        tuple(interpreter.module(TARGETS_MODULE, *args)),
        tuple(sorted((k, v) for k, v in environ.items() if _read_by_targets(k))),
        str(interpreter.cwd),
    )


def _call_targets(command: str, environ: Mapping[str, str], interpreter: Interpreter) -> Any:
    """Run `python -m pairbench.targets COMMAND` and parse its JSON; its errors in one line."""
    try:
        done = subprocess.run(
            interpreter.module(TARGETS_MODULE, command),
            capture_output=True,
            text=True,
            timeout=DESCRIBE_TIMEOUT_S,
            env=dict(environ),
            cwd=interpreter.cwd,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InfrastructureError(f"{TARGETS_MODULE} {command}: {e}") from e
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        error = UsageError if done.returncode == EXIT_USAGE else InfrastructureError
        raise error(f"{TARGETS_MODULE} {command} exited {done.returncode}: {last}")
    try:
        return json.loads(done.stdout)
    except ValueError as e:
        raise InfrastructureError(f"{TARGETS_MODULE} {command}: not JSON ({e})") from e


def _environ(env: Mapping[str, str] | None, interpreter: Interpreter) -> dict[str, str]:
    return dict(env) if env is not None else interpreter.environ()


def _run_targets(command: str, env: Mapping[str, str] | None, interpreter: Interpreter) -> Any:
    """`python -m pairbench.targets COMMAND`'s JSON, asked once per (command line, environment,
    folder): the targets do not change while a command runs."""
    environ = _environ(env, interpreter)
    key = _answer_key(command, environ, interpreter)
    if key not in _ANSWERS:
        _ANSWERS[key] = _stored_or_called(command, environ, interpreter)
    return _ANSWERS[key]


# The documents of this checkout's targets, kept between commands in the state folder: asking
# them starts an interpreter that imports every pair and FastAPI (0.85 s here), which every run,
# verify and workshop check paid before starting anything. An answer is reused only while
# nothing it was built from changed: the command line, the variables the targets read, the
# folder, and the size and modification time of every source file the targets import (this
# checkout's packages, the folders and files those variables name) and of the interpreter's
# package folders, which an install or upgrade changes (docs/architecture.md, "What the
# targets describe"). A baseline's interpreter is always asked.
STORE_FOLDER = "documents"
_OWN_PACKAGES = ("pairbench", "pairbench.targets", "pairbench.harness", "pairbench.results")


def _stored_or_called(command: str, environ: Mapping[str, str], interpreter: Interpreter) -> Any:
    """COMMAND's JSON answer as kept in the state folder (`stored`), else asked and kept."""
    found = stored([command], environ, interpreter)
    if found is None:
        found = _call_targets(command, environ, interpreter)
        keep([command], environ, interpreter, found)
    return found


def _store_path(args: Sequence[str], environ: Mapping[str, str], interpreter: Interpreter) -> Path:
    from .services import state_dir

    stamp = json.dumps([list(_answer_key(args, environ, interpreter)), _sources(environ)])
    digest = hashlib.sha256(stamp.encode()).hexdigest()[:32]
    return state_dir() / STORE_FOLDER / f"{args[0]}-{digest}.json"


def stored(args: Sequence[str], environ: Mapping[str, str], interpreter: Interpreter) -> Any:
    """The kept answer for ARGS, or None (and always None for a baseline's interpreter): nothing
    is asked."""
    if interpreter is not CURRENT:
        return None
    with contextlib.suppress(OSError, ValueError):
        return json.loads(_store_path(args, environ, interpreter).read_text())
    return None


def keep(
    args: Sequence[str], environ: Mapping[str, str], interpreter: Interpreter, answer: Any
) -> None:
    """Keep `answer` as what ARGS prints, asked or learnt another way (`seed`'s own lines carry
    the identities `seed --plan` would print); a baseline's interpreter keeps nothing."""
    if interpreter is not CURRENT or answer is None:
        return
    path = _store_path(args, environ, interpreter)
    with contextlib.suppress(OSError):  # a store that cannot be written only costs time
        path.parent.mkdir(exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(answer))
        os.replace(temporary, path)


def _sources(environ: Mapping[str, str]) -> list[tuple[str, int, int]]:
    """(path, mtime_ns, size) of what the targets' answers are built from."""
    folders: list[Path] = []
    for name in _OWN_PACKAGES:
        spec = importlib.util.find_spec(name)
        folders += [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    files: list[Path] = []
    for name, value in environ.items():  # PAIRBENCH_PAIRS folders, PAIRBENCH_EXERCISE's file
        if name.startswith("PAIRBENCH_") and _read_by_targets(name):
            for token in re.split(rf"[{re.escape(os.pathsep)},=]", value):
                if token and os.path.isabs(token):
                    (folders if os.path.isdir(token) else files).append(Path(token))
    found = [f for folder in folders for f in sorted(folder.rglob("*.py"))] + files
    found += [Path(p) for p in sys.path if p.endswith("-packages") and os.path.isdir(p)]
    stamps = []
    for path in found:
        with contextlib.suppress(OSError):
            stat = path.stat()
            stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
    return stamps


def describe(env: Mapping[str, str] | None = None, interpreter: Interpreter = CURRENT) -> Catalogue:
    """Run `python -m pairbench.targets describe` (this interpreter by default) and parse its JSON.

    `env` replaces the environment (a test's PAIRBENCH_PAIRS); else the interpreter's is used.
    A command's checks before it starts anything and its run share one answer.
    """
    doc = _run_targets("describe", env, interpreter)
    return Catalogue.from_document(doc, f"{TARGETS_MODULE} describe")


def openapi(env: Mapping[str, str] | None = None, interpreter: Interpreter = CURRENT) -> Any:
    """The targets app's OpenAPI document (`python -m pairbench.targets openapi`, no database).

    What each endpoint accepts (parameters and their bounds) is declared once, in the pairs'
    FastAPI parameters; the harness reads it here and never imports the targets.
    """
    doc = _run_targets("openapi", env, interpreter)
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise InfrastructureError(f"{TARGETS_MODULE} openapi: not an OpenAPI document (no paths)")
    return doc


def describe_and_openapi(
    env: Mapping[str, str] | None = None, interpreter: Interpreter = CURRENT
) -> tuple[Catalogue, Any]:
    """describe() and openapi() from one subprocess (`python -m pairbench.targets documents`).

    Each subprocess starts an interpreter and imports every pair and FastAPI, most of its time:
    a command that checks its scenarios needs both documents, so it asks once. The answers land
    where describe() and openapi() look, so the run that follows asks nothing again. Asked of
    this checkout's targets: a baseline's older code may have no `documents` (describe() then).
    """
    environ = _environ(env, interpreter)
    keys = {name: _answer_key(name, environ, interpreter) for name in ("describe", "openapi")}
    if not all(key in _ANSWERS for key in keys.values()):
        both = _stored_or_called("documents", environ, interpreter)
        if not isinstance(both, dict) or not {"describe", "openapi"} <= both.keys():
            raise InfrastructureError(
                f"{TARGETS_MODULE} documents: not a describe and an OpenAPI document"
            )
        for name, key in keys.items():
            _ANSWERS.setdefault(key, both[name])
    return describe(env, interpreter), openapi(env, interpreter)


def fetch(base_url: str) -> Catalogue:
    """A running target's `GET /pairs`; an empty catalogue when it serves none (404)."""
    try:
        response = httpx.get(base_url + "/pairs", timeout=FETCH_TIMEOUT_S)
    except httpx.TransportError as e:
        raise InfrastructureError(f"{base_url}/pairs: {e}") from e
    if response.status_code == httpx.codes.NOT_FOUND:
        return Catalogue()
    if response.status_code != httpx.codes.OK:
        raise InfrastructureError(f"{base_url}/pairs -> {response.status_code}")
    try:
        doc = response.json()
    except ValueError as e:
        raise InfrastructureError(f"{base_url}/pairs: not JSON ({e})") from e
    return Catalogue.from_document(doc, f"{base_url}/pairs")


def _own_rule(scenario: Scenario) -> str:
    """What verification compares for a pair no targets module describes: the scenario's
    `equivalence` for a service of your own (statuses only by default), else equal JSON."""
    if scenario.own_service:
        return scenario.equivalence or STATUS_ONLY
    return DEFAULT_RULE


@dataclass(frozen=True)
class VariantInfo:
    """A variant as reports show it, and how it is requested by default."""

    name: str
    role: str
    label: str
    method: str = "GET"


@dataclass(frozen=True)
class PairInfo:
    """A scenario resolved against the catalogue."""

    scenario: Scenario
    title: str
    summary: str
    variants: list[VariantInfo]  # worst to best
    knob: KnobSpec
    equivalence: dict[str, Any] = field(default_factory=lambda: {"rule": DEFAULT_RULE})
    reset: str | None = None  # POST before every trial and verification request (pairs that write)
    state: str | None = None  # GET after a write: what `side_effect` compares
    lesson: list[str] = field(default_factory=list)  # the pair's counters, headline first
    reference: dict[str, Any] | None = None
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)  # catalogue entries used

    @property
    def name(self) -> str:
        """The run's key for it: the scenario's `name`, else the pair's."""
        return self.scenario.key

    @property
    def rule(self) -> str:
        return str(self.equivalence.get("rule", DEFAULT_RULE))

    @property
    def bad(self) -> str:
        """The reference bad variant, the ratios' numerator: the first bad one (worst first)."""
        return next(v.name for v in self.variants if v.role == "bad")

    def methods(self) -> dict[str, str]:
        return {v.name: v.method for v in self.variants}

    def record(self) -> dict[str, Any]:
        """The pair's description as stored in run.json."""
        return {
            "title": self.title,
            "description": self.summary,
            "variants": [{"name": v.name, "label": v.label, "role": v.role} for v in self.variants],
            "bad": self.bad,
            "knob": {**self.knob.model_dump(), "values": []},
            "counters": self.counters,
            "lesson": self.lesson,
            "reference": self.reference,
            "equivalence": self.equivalence,
        }


def resolve(scenario: Scenario, catalogue: Catalogue) -> PairInfo:
    """Join a scenario with the catalogue's description of its pair; disagreements are usage errors."""
    served = catalogue.pairs.get(scenario.pair)
    if served is None:
        if scenario.variants is None or scenario.knob is None:
            raise UsageError(
                f"{scenario.source}: the target serves no pair {scenario.pair!r};"
                " a scenario for another service must list [variants] and [knob]"
            )
        variants = [
            VariantInfo(n, r, scenario.labels.get(n, n)) for n, r in scenario.variants.items()
        ]
        info = PairInfo(
            scenario,
            scenario.title or scenario.pair,
            "",
            variants,
            scenario.knob,
            equivalence={"rule": _own_rule(scenario)},
        )
    else:
        variants = [
            VariantInfo(v["name"], v["role"], v["label"], str(v.get("method", "GET")).upper())
            for v in served["variants"]
        ]
        if scenario.variants is not None and list(scenario.variants) != [v.name for v in variants]:
            raise UsageError(
                f"{scenario.source}: variants {list(scenario.variants)} differ from the target's"
                f" {[v.name for v in variants]}"
            )
        equivalence = served.get("equivalence") or {"rule": DEFAULT_RULE}
        if equivalence.get("rule", DEFAULT_RULE) not in EQUIVALENCE_RULES:
            raise UsageError(
                f"pair {scenario.pair!r}: unknown equivalence rule {equivalence.get('rule')!r}"
            )
        info = PairInfo(
            scenario,
            scenario.title or served["title"],
            served["summary"],
            variants,
            scenario.knob or KnobSpec(**served["knob"]),
            equivalence=dict(equivalence),
            reset=served.get("reset"),
            state=served.get("state"),
            lesson=list(served.get("counters") or []),
            reference=served.get("reference"),
        )
    roles = [v.role for v in info.variants]
    if "bad" not in roles or "good" not in roles:
        raise UsageError(f"{scenario.source}: a pair needs a bad and a good variant")
    names = {v.name for v in info.variants}
    scenario.check_variants(names)
    for counter, per_variant in scenario.mechanism.items():
        if counter not in catalogue.counters:
            known = ", ".join(catalogue.counters) or "none: the target describes no counters"
            raise UsageError(
                f"{scenario.source}: [mechanism.{counter}]: unknown counter (known: {known})"
            )
        extra = set(per_variant) - names
        if extra:
            raise UsageError(
                f"{scenario.source}: [mechanism.{counter}] names unknown variant {sorted(extra)[0]!r}"
            )
    recorded = [*info.lesson, *(c for c in scenario.mechanism if c not in info.lesson)]
    # Every counter the target offers is recorded per trial; the pair record keeps the entries
    # of all of them so results render any with no table of its own.
    recorded += [c for c in catalogue.counters if c not in recorded]
    return PairInfo(
        info.scenario,
        info.title,
        info.summary,
        info.variants,
        info.knob,
        info.equivalence,
        info.reset,
        info.state,
        info.lesson,
        info.reference,
        catalogue.counter_specs(recorded),
    )
