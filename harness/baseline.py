"""The baseline of an interleaved gate: another commit's targets, built to be served beside today's.

docs/architecture.md, "The gate". The commit is exported (`git archive`) into the
state folder, keyed by its hash, and installed into a folder of its own (`pip install --target`);
its server then runs on this interpreter with that folder first on its path, when its declared
dependencies are today's, or on a virtual environment cached under the hash of its dependency
list when they differ. Nothing is written into the user's checkout or git metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pairbench.errors import InfrastructureError, UsageError

from . import procs, services

DONE = ".complete"  # written last: a folder without it is rebuilt
PIP_TIMEOUT_S = 1800.0
SAME_CODE = "same code"


@dataclass(frozen=True)
class Baseline:
    """Which version serves as the base, and how its targets run."""

    ref: str  # as the user gave it
    commit: str | None  # None: the same code as the new side (an A/A run)
    interpreter: procs.Interpreter
    environment: str  # how its Python environment was provided, for run.json
    build_seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        """What run.json keeps of it (`baseline`, besides its server and pairs)."""
        return {
            "ref": self.ref,
            "commit": self.commit,
            "environment": self.environment,
            "build_seconds": round(self.build_seconds, 2),
        }


def same_code() -> Baseline:
    """The current code against itself: what `calibrate` measures (an A/A run)."""
    return Baseline(SAME_CODE, None, procs.CURRENT, "the current environment (A/A)")


def source_root() -> Path:
    """The git checkout pairbench runs from; a usage error when it is not one."""
    here = Path(__file__).resolve().parent
    try:
        top = _git(here, "rev-parse", "--show-toplevel")
    except InfrastructureError as e:
        raise UsageError(
            "--baseline-ref needs pairbench installed from a git checkout (pip install -e .): "
            f"{here} is not in one"
        ) from e
    return Path(top)


def build(ref: str, message: Callable[[str], None] = lambda text: None) -> Baseline:
    """Export and install the targets of `ref`; cached by commit, reused across gates."""
    root = source_root()
    try:
        commit = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except InfrastructureError:
        raise UsageError(f"--baseline-ref {ref!r}: not a commit of {root}") from None
    started = time.monotonic()
    home = services.state_dir() / "baselines" / commit
    source = _export(root, commit, home / "src")
    wanted = dependencies(source / "pyproject.toml")
    if wanted == dependencies(root / "pyproject.toml"):
        python, environment = sys.executable, "the current environment (dependencies unchanged)"
    else:
        key = hashlib.sha256("\n".join([sys.version, *wanted]).encode()).hexdigest()[:16]
        python = str(_environment(key, wanted, message) / "bin" / "python")
        environment = f"a cached environment {key} (dependencies differ from today's)"
    site = _install(python, source, home / "site", message)
    interpreter = procs.Interpreter(python, {"PYTHONPATH": str(site)}, site)
    _check_imports(interpreter, site)
    short = commit[:10]
    message(f"baseline {ref} ({short}): {environment}; ready in {time.monotonic() - started:.1f} s")
    return Baseline(ref, commit, interpreter, environment, time.monotonic() - started)


def dependencies(pyproject: Path) -> list[str]:
    """The declared runtime dependencies, normalised and sorted (what the environment must hold)."""
    try:
        doc = tomllib.loads(pyproject.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InfrastructureError(f"{pyproject}: {e}") from e
    declared = (doc.get("project") or {}).get("dependencies") or []
    return sorted("".join(str(d).split()).lower() for d in declared)


def _git(cwd: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InfrastructureError(f"git {' '.join(args)}: {e}") from e
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise InfrastructureError(f"git {' '.join(args)}: {last}")
    return done.stdout.strip()


def _export(root: Path, commit: str, into: Path) -> Path:
    """The commit's files (no git metadata) in `into`, made once: a commit never changes."""
    if (into / DONE).exists():
        return into
    into.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=into.parent) as tmp:
        archive = Path(tmp) / "src.tar"
        _git(root, "archive", "--format=tar", "-o", str(archive), commit)
        staged = Path(tmp) / "src"
        with tarfile.open(archive) as tar:
            tar.extractall(staged, filter="data")
        (staged / DONE).write_text(commit + "\n")
        shutil.rmtree(into, ignore_errors=True)
        staged.rename(into)
    return into


def _pip(python: str, args: list[str], what: str) -> None:
    argv = [python, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InfrastructureError(f"{what}: {e}") from e
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise InfrastructureError(f"{what}: {last}")


def _install(python: str, source: Path, site: Path, message: Callable[[str], None]) -> Path:
    """`pip install --no-deps --target site source`, once per commit and environment."""
    marker = site / DONE
    if marker.exists() and marker.read_text().strip() == python:
        return site
    message(f"building the baseline's package from {source}")
    shutil.rmtree(site, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=site.parent) as tmp:
        staged = Path(tmp) / "site"
        _pip(
            python,
            ["install", "--no-deps", "--no-build-isolation", "--target", str(staged), str(source)],
            f"installing the baseline from {source}",
        )
        (staged / DONE).write_text(python + "\n")
        staged.rename(site)
    with contextlib.suppress(OSError):  # pip's build folder inside the exported source
        shutil.rmtree(source / "build")
    return site


def _environment(key: str, wanted: list[str], message: Callable[[str], None]) -> Path:
    """A virtual environment holding `wanted` (the baseline's dependencies), cached by `key`."""
    home = services.state_dir() / "envs" / key
    if (home / DONE).exists():
        return home
    message(f"the baseline's dependencies differ from today's: building environment {key}")
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(home)], check=True, capture_output=True, timeout=300
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise InfrastructureError(f"creating the baseline's environment {home}: {e}") from e
    python = str(home / "bin" / "python")
    _pip(python, ["install", "setuptools>=69", *wanted], f"installing into {home}")
    (home / DONE).write_text("\n".join(wanted) + "\n")
    return home


def _check_imports(interpreter: procs.Interpreter, site: Path) -> None:
    """The baseline's server must import the baseline's targets, not today's."""
    probe = "import importlib.util as u; print(u.find_spec('pairbench.targets').origin)"
    try:
        done = subprocess.run(
            [interpreter.python, "-c", probe],
            capture_output=True,
            text=True,
            timeout=60,
            env=interpreter.environ(),
            cwd=interpreter.cwd,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InfrastructureError(f"the baseline's targets do not import: {e}") from e
    found = done.stdout.strip()
    if done.returncode != 0 or not found.startswith(str(site)):
        last = (done.stderr.strip().splitlines() or [found or "no output"])[-1]
        raise InfrastructureError(f"the baseline imports its targets from the wrong place: {last}")
