"""`pairbench compare`, `pairbench gate --baseline` and `pairbench report --micro` on the micro
suite's saved files, run as the user runs them (docs/ci.md, "Gating the micro benchmarks").

The saved file comes from a real micro session (`pytest benchmarks/micro`, the `test` data
profile, a few short rounds, one pair taken from the registry so no pair is named) on the
session's servers. A regression is constructed from it (every round's time doubled); the
bad-input cases use small hand-made files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pairbench.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from pairbench.harness import services
from pairbench.results.io.microbench import micro_files
from pairbench.targets.registry import load_pairs

from ..conftest import MicroSession, rewrite_micro, scale_micro

ROOT = Path(__file__).resolve().parents[2]
PAIRBENCH = [sys.executable, "-m", "pairbench"]
SLOWER_BY = 2.0


def one_pair_with_cores() -> str:
    """The first registered pair with micro cores: one pair keeps the session short."""
    return next(p.name for p in load_pairs().values() if p.micros)


@pytest.fixture(scope="module")
def env(servers: services.Endpoints) -> dict[str, str]:
    return {
        **os.environ,
        "PAIRBENCH_PG_DSN": servers.pg_dsn,
        "PAIRBENCH_REDIS_URL": servers.redis_url,
    }


@pytest.fixture(scope="module")
def saved(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, run_micro_suite: MicroSession
) -> Path:
    """One real micro session's saved file (pytest-benchmark's autosave, with its rounds)."""
    storage = tmp_path_factory.mktemp("micro-storage")
    done = run_micro_suite(storage, env, "-k", one_pair_with_cores())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = micro_files(storage)
    assert len(files) == 1, files
    return files[0]


def pairbench(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PAIRBENCH, *map(str, args)], env=env, capture_output=True, text=True, timeout=120
    )


def slower(doc: dict[str, Any]) -> None:
    """A constructed regression: every round SLOWER_BY times slower."""
    scale_micro(doc, SLOWER_BY)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_compare_two_micro_files_prints_a_table_and_exits_0(
    saved: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    # A copy with another name and no .json suffix: recognised by its content.
    copy = rewrite_micro(saved, tmp_path / "again.data", lambda doc: None)
    done = pairbench("compare", saved, copy, env=env)
    assert done.returncode == EXIT_OK, done.stderr
    assert "new / baseline" in done.stdout
    assert "time per call (ms)" in done.stdout
    assert "1.00x" in done.stdout
    assert f"comparisons of again.data against {saved.name}: 0 slower" in done.stdout


def test_the_gate_fails_a_slower_micro_file_with_exit_1(
    saved: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    new = rewrite_micro(saved, tmp_path / "new.json", slower)
    out = tmp_path / "gate-out"
    done = pairbench("gate", "--baseline", saved, new, "--out", out, env=env)
    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert one_line(done).startswith("pairbench: error: gate REGRESSION")
    gate_md = (out / "gate.md").read_text(encoding="utf-8")
    assert "# pairbench gate: REGRESSION" in gate_md
    assert "**Micro benchmarks**" in gate_md
    assert "2.00x" in gate_md
    assert "<failure" in (out / "junit.xml").read_text(encoding="utf-8")
    # Against itself it passes, and gate.md goes next to NEW when --out is not given.
    same = rewrite_micro(saved, tmp_path / "same.json", lambda doc: None)
    done = pairbench("gate", "--baseline", saved, same, env=env)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert "gate PASS" in done.stdout
    assert (tmp_path / "gate.md").is_file()


def test_a_micro_file_saved_without_rounds_is_refused_in_one_line(
    saved: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    def no_data(doc: dict[str, Any]) -> None:
        for bench in doc["benchmarks"]:
            del bench["stats"]["data"]

    bare = rewrite_micro(saved, tmp_path / "bare.json", no_data)
    for command in (("compare", saved, bare), ("gate", "--baseline", bare, saved)):
        done = pairbench(*command, env=env)
        assert done.returncode == EXIT_USAGE, done.stdout + done.stderr
        line = one_line(done)
        assert "bare.json: benchmark" in line and "--benchmark-save-data" in line


HAND_MADE = {
    "machine_info": {"node": "here"},
    "commit_info": {"id": "abc", "dirty": False},
    "benchmarks": [
        {
            "name": "test_x",
            "group": "g",
            "extra_info": {},
            "stats": {"median": 0.001, "data": [0.001, 0.0011]},
        }
    ],
    "datetime": "2026-01-01T00:00:00+00:00",
    "version": "5.1.0",
}


def test_bad_micro_inputs_exit_2_with_one_line(
    saved: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}", encoding="utf-8")
    other = tmp_path / "other.json"
    other.write_text(json.dumps(HAND_MADE), encoding="utf-8")
    cases = [
        (("compare", saved, run_dir), "is a micro benchmark file (pytest-benchmark JSON) and"),
        (("compare", run_dir, saved), "compare two micro files, or two runs"),
        (("gate", "--baseline", saved, run_dir), "is a micro benchmark file"),
        (("gate", "--baseline", saved), "give NEW, a micro file saved with --benchmark-save-data"),
        (("compare", saved, other), "share no benchmark"),
    ]
    for args, expected in cases:
        done = pairbench(*args, env=env)
        assert done.returncode == EXIT_USAGE, (args, done.stdout, done.stderr)
        assert expected in one_line(done), (args, done.stderr)


def test_report_micro_option_points_at_a_file_and_refuses_a_missing_one(
    saved: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    missing = tmp_path / "nowhere"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fixture_run = ROOT / "tests" / "fixtures" / "run-v1" / "run.json"
    (run_dir / "run.json").write_text(fixture_run.read_text(encoding="utf-8"), encoding="utf-8")
    done = pairbench("report", run_dir, "--micro", missing, env=env)
    assert done.returncode == EXIT_USAGE
    assert f"--micro {missing}: no such file or folder" in one_line(done)
    # A stored run of another commit: the section says so in one line, and the report is written.
    done = pairbench("report", run_dir, "--micro", saved, env=env)
    assert done.returncode == EXIT_OK, done.stderr
    report_md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "## Micro benchmarks beside end to end\n\nNo micro result for this commit" in report_md


def test_report_reads_the_state_folders_micro_storage_by_default(
    saved: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    state = tmp_path / "state"
    storage = state / "micro" / "Linux-CPython"
    storage.mkdir(parents=True)
    copy = rewrite_micro(saved, storage / "0001_saved.json", lambda doc: None)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fixture_run = ROOT / "tests" / "fixtures" / "run-v1" / "run.json"
    run = json.loads(fixture_run.read_text(encoding="utf-8"))
    commit = json.loads(copy.read_text(encoding="utf-8"))["commit_info"]["pairbench"]["commit"]
    run["metadata"]["git"] = {"commit": "f" * 40 if commit != "f" * 40 else "e" * 40}
    (run_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")
    done = pairbench("report", run_dir, env={**env, "PAIRBENCH_STATE_DIR": str(state)})
    assert done.returncode == EXIT_OK, done.stderr
    report_md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert f"1 in {state / 'micro'}, for commit {commit[:10]}" in report_md
