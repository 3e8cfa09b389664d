"""`pairbench workshop init` and `check` against the session's real servers (no mocks).

The exercises come from the registry: every pair that declares one (`pair.exercise`) is
initialised and its reference solution (its reference variant's own source, renamed) must
pass; the untouched stub, the slow way and broken files are tried on the first pair whose
exercise checks a per-request counter. No pair is named here (tests/test_pair_contract.py).
A check seeds the quick sizes, so it gets a database and a Redis database of its own.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pairbench.cli import workshop
from pairbench.errors import EXIT_FAILED, EXIT_NOT_ATTEMPTED, EXIT_OK, EXIT_USAGE
from pairbench.harness import services
from pairbench.targets.exercise import EXERCISE_VARIANT
from pairbench.targets.registry import Pair, load_pairs

EXERCISES = workshop.exercises(load_pairs())
# The pair the failure cases use: its exercise checks a counter on one request alone, so the
# bad variant served as yours fails on the mechanism before anything is timed.
MECHANISM = next(
    p for p in EXERCISES.values() if p.workshop and any(s.per_request for s in p.workshop.shows)
)
CHECK_REDIS_DATABASE = 3  # the app's is 0, the gate's baseline 1, the micro suite's 2
LOOP_LIMIT_S = 60.0  # the call limit, the server's start and its stop, on a busy machine


@pytest.fixture(scope="module")
def check_env(servers: services.Endpoints, fresh_database: Callable[[str], str]) -> dict[str, str]:
    """A `pairbench` environment with a database of the checks' own (they seed quick sizes)."""
    return {
        **os.environ,
        "PAIRBENCH_PG_DSN": fresh_database("pairbench_workshop_checks"),
        "PAIRBENCH_REDIS_URL": services.redis_database(servers.redis_url, CHECK_REDIS_DATABASE),
    }


def _run(
    pairbench: list[str], env: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pairbench, "workshop", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def _solution(pair: Pair, variant: str) -> str:
    """The exercise file with `variant`'s own source as yours."""
    return workshop.exercise_source(
        pair, solution=workshop.variant_source(pair, variant, rename=EXERCISE_VARIANT)
    )


def _broken(pair: Pair, statements: list[str]) -> tuple[str, int]:
    """The reference solution with `statements` first in yours' body; the first one's line."""
    assert pair.workshop is not None
    text = _solution(pair, pair.workshop.reference)
    yours = next(
        n
        for n in ast.parse(text).body
        if isinstance(n, ast.AsyncFunctionDef) and n.name == EXERCISE_VARIANT
    )
    after = yours.body[0].end_lineno  # the docstring's last line
    assert after is not None
    lines = text.splitlines()
    lines[after:after] = [f"    {s}" for s in statements]
    return "\n".join(lines) + "\n", after + 1


def _init(pairbench: list[str], tmp_path: Path) -> Path:
    folder = tmp_path / "exercises"
    done = _run(pairbench, dict(os.environ), tmp_path, "init", str(folder))
    assert done.returncode == EXIT_OK, done.stderr
    return folder


def test_every_built_in_pair_declares_an_exercise_or_why_not() -> None:
    built_in = [
        p for p in load_pairs().values() if p.bad.handler.__module__.startswith("pairbench.")
    ]
    assert built_in
    assert [p.name for p in built_in if p.workshop is None and p.no_workshop is None] == []


def test_init_writes_one_exercise_per_pair_and_refuses_a_non_empty_folder(
    pairbench: list[str], tmp_path: Path
) -> None:
    folder = _init(pairbench, tmp_path)
    for name, pair in EXERCISES.items():
        text = (folder / f"{name}.py").read_text()
        tree = ast.parse(text)
        functions = {n.name for n in tree.body if isinstance(n, ast.AsyncFunctionDef)}
        assert functions == {pair.exercise_start.name, EXERCISE_VARIANT}
        assert "raise NotImplementedError" in text
        assert pair.workshop is not None and pair.workshop.task.split()[0] in text
    readme = (folder / "README.md").read_text()
    assert all(f"`{name}.py`" in readme for name in EXERCISES)
    assert "workshop check" in readme
    again = _run(pairbench, dict(os.environ), tmp_path, "init", str(folder))
    assert again.returncode == EXIT_USAGE
    assert (
        again.stderr.count("\n") == 1 and "not empty" in again.stderr and "--force" in again.stderr
    )
    forced = _run(pairbench, dict(os.environ), tmp_path, "init", str(folder), "--force")
    assert forced.returncode == EXIT_OK, forced.stderr


def test_the_untouched_stub_is_not_attempted(pairbench: list[str], tmp_path: Path) -> None:
    folder = _init(pairbench, tmp_path)
    done = _run(pairbench, dict(os.environ), folder, "check", MECHANISM.name)
    assert done.returncode == EXIT_NOT_ATTEMPTED, done.stdout + done.stderr
    assert done.stdout.startswith(f"NOT ATTEMPTED {MECHANISM.name}: ")
    assert "not attempted" in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_an_unknown_pair_or_a_missing_file_is_a_usage_error(
    pairbench: list[str], tmp_path: Path
) -> None:
    unknown = _run(pairbench, dict(os.environ), tmp_path, "check", "no_such_pair")
    assert unknown.returncode == EXIT_USAGE
    assert "unknown exercise 'no_such_pair'" in unknown.stderr
    missing = _run(pairbench, dict(os.environ), tmp_path, "check", MECHANISM.name)
    assert missing.returncode == EXIT_USAGE
    assert f"{MECHANISM.name}.py: no such exercise file" in missing.stderr


# Whether each reference reaches its threshold under load is a timing figure:
# benchmarks/workshop_references.py prints it. Here each reference passes everything decided
# before timing, and the measured grading is exercised end to end on a generated pair (below).
@pytest.fixture(scope="module")
def exercise_folder(pairbench: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `workshop init` for the references below: each writes only its own pair's file."""
    return _init(pairbench, tmp_path_factory.mktemp("references"))


@pytest.mark.parametrize("pair", list(EXERCISES.values()), ids=list(EXERCISES))
def test_the_reference_solution_passes_verification(
    pairbench: list[str], check_env: dict[str, str], exercise_folder: Path, pair: Pair
) -> None:
    folder = exercise_folder
    assert pair.workshop is not None
    (folder / f"{pair.name}.py").write_text(_solution(pair, pair.workshop.reference))
    done = _run(pairbench, check_env, folder, "check", pair.name, "--verify-only")
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert done.stdout.startswith(f"VERIFIED {pair.name}: ")
    assert f"the same result as {pair.exercise_start.name}" in done.stdout
    assert "measuring" not in done.stderr  # nothing was timed


def test_the_slow_way_fails_on_the_mechanism_with_the_hint(
    pairbench: list[str], check_env: dict[str, str], tmp_path: Path
) -> None:
    folder = _init(pairbench, tmp_path)
    assert MECHANISM.workshop is not None
    (folder / f"{MECHANISM.name}.py").write_text(
        _solution(MECHANISM, MECHANISM.exercise_start.name)
    )
    done = _run(pairbench, check_env, folder, "check", MECHANISM.name)
    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert done.stdout.startswith(f"FAIL {MECHANISM.name}: ")
    shows = next(s for s in MECHANISM.workshop.shows if s.per_request)
    assert shows.hint in done.stdout
    assert f"(the reference {MECHANISM.workshop.reference}: " in done.stdout
    assert "measuring" not in done.stderr  # failed in verification: nothing was timed


@pytest.mark.parametrize(
    ("statements", "says"),
    [
        (["return (", "    1"], "syntax error"),
        (["ratio = 1 / 0"], "raised ZeroDivisionError: division by zero"),
        (["spins = 1", "while spins > 0:", "    spins += 1"], "did not answer within 2 s"),
        (["return {1, 2}"], "returned a value the response cannot carry"),
        (["import asyncio", "await asyncio.Event().wait()"], "did not answer within 2 s"),
    ],
    ids=["syntax-error", "exception", "endless-loop", "wrong-type", "await-forever"],
)
def test_a_broken_file_gets_one_line_naming_file_and_line(
    pairbench: list[str],
    check_env: dict[str, str],
    tmp_path: Path,
    statements: list[str],
    says: str,
) -> None:
    folder = _init(pairbench, tmp_path)
    text, line = _broken(MECHANISM, statements)
    lines = [line]
    if says.startswith("did not answer"):
        # The stack is in the loop (its test or its body), or at the await.
        lines = [line + 1, line + 2]
    elif says.startswith("returned"):
        lines = [
            next(
                i
                for i, t in enumerate(text.splitlines(), start=1)
                if t.startswith(f"async def {EXERCISE_VARIANT}(")
            )
        ]
    (folder / f"{MECHANISM.name}.py").write_text(text)
    t0 = time.monotonic()
    # --call-limit 2: the default 10 s would only make the wait longer (the FAIL is the same).
    done = _run(pairbench, check_env, folder, "check", MECHANISM.name, "--call-limit", "2")
    elapsed = time.monotonic() - t0
    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert done.stdout.count("\n") == 1, done.stdout
    assert any(
        done.stdout.startswith(f"FAIL {MECHANISM.name}: {MECHANISM.name}.py:{n}") for n in lines
    ), done.stdout
    assert says in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert elapsed < LOOP_LIMIT_S


# Writes a pair's reference solution into its exercise file, in a process of its own: the new
# pair is loaded from PAIRBENCH_PAIRS there, never into this session's registry.
WRITE_REFERENCE = """
import sys
from pathlib import Path
from pairbench.cli import workshop
from pairbench.targets.exercise import EXERCISE_VARIANT
from pairbench.targets.registry import load_pairs
pair = load_pairs()[sys.argv[1]]
solution = workshop.variant_source(pair, pair.workshop.reference, rename=EXERCISE_VARIANT)
Path(sys.argv[2]).write_text(workshop.exercise_source(pair, solution=solution))
"""


def test_a_new_pair_comes_with_an_exercise_that_its_reference_passes(
    pairbench: list[str], check_env: dict[str, str], tmp_path: Path
) -> None:
    name = "workshop_demo"
    made = subprocess.run(
        [*pairbench, "new", name, "--into", str(tmp_path / "own")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert made.returncode == EXIT_OK, made.stderr
    env = {
        **check_env,
        "PAIRBENCH_PAIRS": str(tmp_path / "own" / "pairs"),
        "PAIRBENCH_SCENARIOS": str(tmp_path / "own" / "scenarios"),
    }
    folder = tmp_path / "exercises"
    assert _run(pairbench, env, tmp_path, "init", str(folder)).returncode == EXIT_OK
    stub = _run(pairbench, env, folder, "check", name)
    assert stub.returncode == EXIT_NOT_ATTEMPTED, stub.stdout + stub.stderr
    file = folder / f"{name}.py"
    subprocess.run([sys.executable, "-c", WRITE_REFERENCE, name, str(file)], env=env, check=True)
    done = _run(pairbench, env, folder, "check", name)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert done.stdout.startswith(f"PASS {name}: ")
