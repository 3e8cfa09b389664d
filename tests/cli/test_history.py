"""`pairbench history` on stored runs, run as the user runs it.

The runs are copies of the real fixture run (tests/fixtures/run-v1: the N+1 pair, four
variants, two rounds), each with its good variants' histograms scaled: a little per run (noise)
and, from run k on, twice as slow (a step the change points must find).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from pairbench.results.history.changes import INSTALL_HINT, MIN_POINTS, otava_available

PAIRBENCH = [sys.executable, "-m", "pairbench"]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "run-v1" / "run.json"
PAIR = "demo"
GOOD = ("join", "batched", "dataloader")
RUNS = 10
STEP_AT = 6
SLOWER = 2.0
NOISE = 0.03

requires_otava = pytest.mark.skipif(
    not otava_available(), reason="apache-otava missing: pip install 'pairbench[history]'"
)


def scaled(encoded: str, factor: float) -> str:
    """The same histogram with every recorded value times `factor`."""
    source = HdrHistogram.decode(encoded)
    target = HdrHistogram(1, 60_000_000, 3)
    for item in source.get_recorded_iterator():
        value = max(1, round(item.value_iterated_to * factor))
        target.record_value(value, item.count_added_in_this_iter_step)
    return str(target.encode().decode("ascii"))


def write_runs(
    folder: Path,
    count: int,
    *,
    step_at: int | None = None,
    hostname: str = "vm",
    prefix: str = "r",
    seed: int = 5,
) -> list[Path]:
    """`count` copies of the fixture run an hour apart, good variants scaled."""
    fixture: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        run = json.loads(json.dumps(fixture))
        # Under a neutral name: a test outside the pair's own files never names a built-in pair.
        (record,) = run["pairs"].values()
        run["pairs"] = {PAIR: record}
        run["run_id"] = f"20261128-{i:02d}0000-{prefix}{i}"
        run["started_at"] = f"2026-11-28T{i:02d}:00:00+00:00"
        run["metadata"]["machine"]["hostname"] = hostname
        run["metadata"]["git"] = {
            "commit": f"{i:x}" * 40,
            "commit_date": f"2026-11-{i + 1:02d}T10:00:00+00:00",
            "dirty": False,
        }
        factor = float(rng.lognormal(0.0, NOISE)) * (
            SLOWER if step_at is not None and i >= step_at else 1.0
        )
        for trial in run["pairs"][PAIR]["trials"]:
            if trial["variant"] in GOOD:
                trial["histogram"] = scaled(trial["histogram"], factor)
        folder.joinpath(run["run_id"]).mkdir(parents=True)
        path = folder / run["run_id"] / "run.json"
        path.write_text(json.dumps(run), encoding="utf-8")
        paths.append(path)
    return paths


def pairbench(*args: str, pre: str = "") -> subprocess.CompletedProcess[str]:
    """The command in a fresh interpreter; `pre` runs first (e.g. to hide a package)."""
    code = f"{pre}\nfrom pairbench.cli import main\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )


@pytest.fixture(scope="module")
def step_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    write_runs(folder, RUNS, step_at=STEP_AT)
    return folder


def row_of(stdout: str, run_id: str) -> str:
    (line,) = [line for line in stdout.splitlines() if run_id in line]
    return line


@requires_otava
def test_history_marks_the_step_and_writes_figure_and_json(step_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = pairbench("history", str(step_runs), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "10 runs in 1 group (machine, profile):" in result.stdout
    assert "vm · AMD EPYC · 2 cores, profile quick: 10 runs" in result.stdout
    ids = [f"20261128-{i:02d}0000-r{i}" for i in range(RUNS)]
    # The good variants got twice as slow: the ratio falls by about half there, and only there.
    step_row = row_of(result.stdout, ids[STEP_AT])
    assert "▼ ratio -" in step_row
    assert all("ratio" not in row_of(result.stdout, i) for i in ids if i != ids[STEP_AT])
    assert "6666666+" not in result.stdout  # not dirty
    assert "6666666" in step_row and "2026-11-07" in step_row  # short commit, commit date
    figures = sorted(out.glob("history-*"))
    assert [p.suffix for p in figures] == [".png", ".svg"]
    document = json.loads((out / "history.json").read_text())
    (pair,) = document["groups"][0]["pairs"]
    (change,) = pair["headline"]["change_points"]
    assert change["run_id"] == ids[STEP_AT]
    assert change["change"] == pytest.approx(1 / SLOWER - 1, abs=0.15)
    best = pair["good"]
    assert best in GOOD
    assert [c["run_id"] for c in pair["latency_ms"][best]["change_points"]] == [ids[STEP_AT]]
    for path in [*figures, out / "history.json"]:
        assert str(path) in result.stdout


def test_two_machines_are_two_groups_and_two_figures(tmp_path: Path) -> None:
    write_runs(tmp_path / "runs", 3, hostname="ci-a", prefix="a")
    write_runs(tmp_path / "runs", 3, hostname="ci-b", prefix="b")
    out = tmp_path / "out"
    result = pairbench("history", str(tmp_path / "runs"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "6 runs in 2 groups" in result.stdout
    assert "ci-a · AMD EPYC · 2 cores, profile quick: 3 runs" in result.stdout
    assert "ci-b · AMD EPYC · 2 cores, profile quick: 3 runs" in result.stdout
    assert len(list(out.glob("history-*.png"))) == 2
    groups = json.loads((out / "history.json").read_text())["groups"]
    assert sorted(g["machine"].split(" ")[0] for g in groups) == ["ci-a", "ci-b"]
    # Three runs are too few for change points: said once per pair, in one line.
    notes = [line for line in result.stdout.splitlines() if "change points need at least" in line]
    assert (
        notes
        == [
            f"{PAIR}: no change points for ratio, join, batched, dataloader: 3 points, "
            f"change points need at least {MIN_POINTS}"
        ]
        * 2
    )


def test_run_folders_and_folders_of_runs_mix(tmp_path: Path) -> None:
    paths = write_runs(tmp_path / "runs", 3)
    (tmp_path / "runs" / "notes").mkdir()  # not a run: skipped
    out = tmp_path / "out"
    result = pairbench("history", str(paths[0].parent), str(tmp_path / "runs"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "3 runs in 1 group" in result.stdout


def test_a_bad_run_file_is_exit_2_in_one_line(tmp_path: Path) -> None:
    write_runs(tmp_path / "runs", 2)
    bad = tmp_path / "runs" / "zz-broken" / "run.json"
    bad.parent.mkdir()
    bad.write_text('{"schema_version": 2}', encoding="utf-8")
    result = pairbench("history", str(tmp_path / "runs"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert str(bad) in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_pair_is_exit_2(tmp_path: Path) -> None:
    write_runs(tmp_path / "runs", 2)
    result = pairbench("history", str(tmp_path / "runs"), "--pair", "nope", "--out", str(tmp_path))
    assert result.returncode == 2
    assert f"--pair nope: not in these runs (they have {PAIR})" in result.stderr


def test_without_otava_it_still_prints_and_draws(step_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # An interpreter where `import otava` fails, as on an install without the history extra.
    result = pairbench(
        "history", str(step_runs), "--out", str(out), pre="import sys\nsys.modules['otava'] = None"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(INSTALL_HINT) == 1
    assert "▼" not in result.stdout
    assert len(list(out.glob("history-*.png"))) == 1
    document = json.loads((out / "history.json").read_text())
    assert document["change_points"]["available"] is False
    (pair,) = document["groups"][0]["pairs"]
    assert pair["headline"]["change_points"] == []
    assert pair["headline"]["detection"] == INSTALL_HINT
