"""results/history: runs found, grouped and ordered; series with intervals; Otava's change
points at the right run; the figure and history.json.

The runs are synthetic demo runs (real HdrHistograms, tests/results/conftest.py): from run k on,
the good variant `join` is twice as slow, so the headline ratio halves and join's latency
doubles there.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pairbench.results.analysis.ratios import mean_with_ci, ratio_with_ci
from pairbench.results.history.changes import MIN_CHANGE, MIN_POINTS, detect, otava_available
from pairbench.results.history.document import HISTORY_FILE, history_document, write_history
from pairbench.results.history.figure import figure_stem, percent, write_history_figure
from pairbench.results.history.runs import (
    find_run_files,
    group_runs,
    load_runs,
    machine_key,
)
from pairbench.results.history.series import HEADLINE, group_histories
from pairbench.results.io.runfile import RunFileError

RUNS = 10
STEP_AT = 6
SLOWER = 2.0
KNOB = 100

requires_otava = pytest.mark.skipif(
    not otava_available(), reason="apache-otava missing: pip install 'pairbench[history]'"
)


def write_runs(
    synth: Any,
    folder: Path,
    count: int,
    *,
    step_at: int | None = None,
    seed: int = 100,
    machine: dict[str, Any] | None = None,
    profile: str = "quick",
    prefix: str = "r",
) -> list[Path]:
    """`count` demo runs a day apart; from `step_at` on, join is SLOWER times slower."""
    paths = []
    for i in range(count):
        slow = step_at is not None and i >= step_at
        model = synth.slower("join", SLOWER if slow else 1.0)
        run_id = f"202501{i + 1:02d}-120000-{prefix}{i}"
        # Only the expectation's knob value (the largest declared) is measured: faster to analyse.
        run = synth.demo_run(seed + i, run_id, model, knobs=(KNOB,))
        run["started_at"] = f"2025-01-{i + 1:02d}T12:00:00Z"
        run["profile"] = profile
        if machine is not None:
            run["metadata"]["machine"] = machine
        run["metadata"]["git"] = {"commit": f"{i:x}" * 40, "dirty": i == count - 1}
        paths.append(synth.write(folder / run_id, run))
    return paths


@pytest.fixture(scope="module")
def step_folder(tmp_path_factory: pytest.TempPathFactory, synth: Any) -> Path:
    folder = tmp_path_factory.mktemp("step")
    write_runs(synth, folder, RUNS, step_at=STEP_AT)
    return folder


@pytest.fixture(scope="module")
def step_history(step_folder: Path) -> tuple[Any, Any]:
    (group,) = group_runs(load_runs(find_run_files([step_folder])))
    (history,) = group_histories(group)
    return group, history


def test_a_folder_of_runs_is_expanded_and_other_folders_are_skipped(
    step_folder: Path, tmp_path: Path
) -> None:
    (step_folder / "history").mkdir(exist_ok=True)  # e.g. a previous --out inside the folder
    files = find_run_files([step_folder])
    assert len(files) == RUNS
    assert all(f.name == "run.json" for f in files)
    # A run folder, its run.json and the folder holding it name the same runs once.
    again = find_run_files([files[0].parent, files[0], step_folder])
    assert len(again) == RUNS


def test_a_folder_without_runs_and_a_missing_path_are_input_errors(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(RunFileError, match=r"no run\.json in it or in its subfolders"):
        find_run_files([tmp_path / "empty"])
    with pytest.raises(RunFileError, match="no such file or folder"):
        find_run_files([tmp_path / "nowhere"])


def test_a_bad_run_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken" / "run.json"
    bad.parent.mkdir()
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(RunFileError) as caught:
        load_runs(find_run_files([tmp_path]))
    assert str(bad) in str(caught.value)
    assert caught.value.exit_code == 2


def test_runs_are_ordered_by_start_time_not_by_name(tmp_path: Path, synth: Any) -> None:
    paths = write_runs(synth, tmp_path, 3)
    # The first run by name started last.
    late = json.loads(paths[0].read_text())
    late["started_at"] = "2025-02-01T00:00:00+00:00"
    paths[0].write_text(json.dumps(late))
    (group,) = group_runs(load_runs(find_run_files([tmp_path])))
    assert [r.run_id for r in group.runs] == [
        "20250102-120000-r1",
        "20250103-120000-r2",
        "20250101-120000-r0",
    ]


def test_machines_and_profiles_are_never_mixed(tmp_path: Path, synth: Any) -> None:
    other = {"hostname": "ci-2", "cpu_model": "Other CPU", "cores": 8}
    write_runs(synth, tmp_path / "a", 2, prefix="a")
    write_runs(synth, tmp_path / "b", 2, machine=other, prefix="b")
    write_runs(synth, tmp_path / "c", 2, profile="standard", prefix="c")
    groups = group_runs(load_runs(find_run_files([tmp_path / "a", tmp_path / "b", tmp_path / "c"])))
    keys = {(g.machine, g.profile): [r.run_id[-2:] for r in g.runs] for g in groups}
    assert keys == {
        ("Test CPU 9000 · 2 cores", "quick"): ["a0", "a1"],
        ("ci-2 · Other CPU · 8 cores", "quick"): ["b0", "b1"],
        ("Test CPU 9000 · 2 cores", "standard"): ["c0", "c1"],
    }
    stems: set[str] = set()
    names = {figure_stem(g, tmp_path, stems).name for g in groups}
    assert len(names) == 3  # one figure per group


def test_machine_key_uses_what_was_recorded() -> None:
    assert machine_key({"metadata": {}}) == "unknown machine"
    machine = {"hostname": "vm", "cpu_model": "AMD EPYC", "cores": 2, "kernel": "6.1"}
    assert machine_key({"metadata": {"machine": machine}}) == "vm · AMD EPYC · 2 cores"


def test_the_headline_is_the_latest_runs_best_good_at_the_expectation_knob(
    step_history: tuple[Any, Any],
) -> None:
    group, history = step_history
    assert (history.pair, history.bad, history.good, history.knob) == (
        "demo",
        "lazy",
        "join",
        "100",
    )
    assert history.knob_text == "n=100"
    assert [s.name for s in history.latency] == ["join"]  # good variants only, not selectin
    assert len(history.headline.points) == len(group.runs)
    for point in (*history.headline.points, *history.latency[0].points):
        assert point.value is not None and point.ci_low is not None and point.ci_high is not None
        assert point.ci_low <= point.value <= point.ci_high
    # demo_ms: lazy 10*sqrt(100) = 100 ms, join 1 ms, then 2 ms from the step on.
    before, after = history.headline.points[0], history.headline.points[-1]
    assert before.value == pytest.approx(100.0, rel=0.2)
    assert after.value == pytest.approx(100.0 / SLOWER, rel=0.2)
    assert history.latency[0].points[0].value == pytest.approx(1.0, rel=0.2)
    assert history.latency[0].points[-1].value == pytest.approx(SLOWER, rel=0.2)


@requires_otava
def test_the_step_is_a_change_point_at_its_run_with_its_direction(
    step_history: tuple[Any, Any],
) -> None:
    _group, history = step_history
    (ratio_change,) = history.headline.detection.changes
    assert ratio_change.index == STEP_AT
    assert ratio_change.change == pytest.approx(1 / SLOWER - 1, abs=0.1)  # about -50%
    (latency_change,) = history.latency[0].detection.changes
    assert latency_change.index == STEP_AT
    assert latency_change.change == pytest.approx(SLOWER - 1, abs=0.2)  # about +100%
    marks = dict(history.changes_at(STEP_AT))
    assert marks[HEADLINE] < 0 < marks["join"]
    assert history.changes_at(STEP_AT - 1) == []


@requires_otava
def test_a_flat_series_has_no_change_point(tmp_path: Path, synth: Any) -> None:
    write_runs(synth, tmp_path, RUNS, seed=300)
    (group,) = group_runs(load_runs(find_run_files([tmp_path])))
    (history,) = group_histories(group)
    for series in (history.headline, *history.latency):
        assert series.detection.ran
        assert series.detection.changes == ()


def test_too_few_runs_say_so(tmp_path: Path, synth: Any) -> None:
    write_runs(synth, tmp_path, MIN_POINTS - 1, step_at=2)
    (group,) = group_runs(load_runs(find_run_files([tmp_path])))
    (history,) = group_histories(group)
    note = history.headline.detection.note
    assert note == f"{MIN_POINTS - 1} points, change points need at least {MIN_POINTS}"
    assert history.headline.detection.changes == ()


@requires_otava
def test_missing_points_are_skipped_and_indexes_refer_to_the_runs() -> None:
    values: list[float | None] = [2.0, 2.1, None, 1.9, 2.0, 4.0, None, 4.1, 3.9, 4.0]
    (change,) = detect(values).changes
    assert change.index == 5
    assert change.change == pytest.approx(1.0, abs=0.1)


@requires_otava
def test_a_significant_step_below_the_minimum_change_is_dropped() -> None:
    rng = np.random.default_rng(2)
    noise = rng.lognormal(0.0, 0.005, 12)  # so quiet that a 5% step is beyond doubt
    small = [float(v) for v in 2.0 * noise * np.r_[np.ones(6), np.full(6, 1.05)]]
    assert detect(small, min_change=0.0).changes != ()
    assert detect(small).changes == ()  # MIN_CHANGE: 10% either way
    large = [float(v) for v in 2.0 * noise * np.r_[np.ones(6), np.full(6, 0.8)]]
    (change,) = detect(large).changes
    assert change.index == 6
    assert change.change == pytest.approx(-0.2, abs=0.02)
    assert MIN_CHANGE == 0.10


def test_a_pair_missing_from_some_runs_has_gaps(tmp_path: Path, synth: Any) -> None:
    paths = write_runs(synth, tmp_path, 3)
    run = json.loads(paths[1].read_text())
    run["pairs"] = {"other": copy.deepcopy(run["pairs"]["demo"])}
    paths[1].write_text(json.dumps(run))
    (group,) = group_runs(load_runs(find_run_files([tmp_path])))
    histories = {h.pair: h for h in group_histories(group)}
    assert set(histories) == {"demo", "other"}
    assert [p.value is None for p in histories["demo"].headline.points] == [False, True, False]
    assert [h.pair for h in group_histories(group, ["other"])] == ["other"]


def test_latency_interval_is_the_ratios_t_interval_of_per_round_values() -> None:
    values = [3.0, 3.3, 2.9, 3.1, 3.6]
    mean, low, high = mean_with_ci(values)
    same = ratio_with_ci(values, [1.0] * len(values))
    assert (mean, low, high) == (same.ratio, same.ci_low, same.ci_high)
    assert mean_with_ci([4.0]) == pytest.approx((4.0, None, None))
    assert mean_with_ci([]) == (None, None, None)


def test_figure_and_history_json_are_written(step_history: tuple[Any, Any], tmp_path: Path) -> None:
    group, history = step_history
    stem = figure_stem(group, tmp_path, set())
    paths = write_history_figure(group, [history], stem)
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert paths[0].read_bytes().startswith(b"\x89PNG")
    written = write_history(history_document([(group, [history])], [paths]), tmp_path)
    assert written == tmp_path / HISTORY_FILE
    document = json.loads(written.read_text())
    (stored_group,) = document["groups"]
    assert stored_group["profile"] == "quick"
    assert [r["run_id"] for r in stored_group["runs"]] == [r.run_id for r in group.runs]
    assert stored_group["runs"][-1]["dirty"] is True
    (pair,) = stored_group["pairs"]
    assert (pair["pair"], pair["good"], pair["knob"]) == ("demo", "join", "n=100")
    points = pair["headline"]["points"]
    assert len(points) == RUNS and points[0]["value"] == history.headline.points[0].value
    assert set(pair["latency_ms"]) == {"join"}
    if otava_available():
        (change,) = pair["headline"]["change_points"]
        assert change["run_id"] == group.runs[STEP_AT].run_id
        assert change["change"] < 0


def test_percent_has_a_sign() -> None:
    assert percent(0.35) == "+35%"
    assert percent(-0.5) == "-50%"
    assert percent(0.042) == "+4.2%"
