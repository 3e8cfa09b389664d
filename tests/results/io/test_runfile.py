"""run.json: loading, and validation errors as one line naming the file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from pairbench.results.io.runfile import RunFileError, load_run
from pairbench.results.io.upgrade import upgrade


def _assert_one_line_naming(error: pytest.ExceptionInfo[RunFileError], path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def test_load_run_round_trips_from_folder_and_file(run_dir: Path, demo_run: dict) -> None:
    # Reading upgrades a run without counter metadata: that is the only difference.
    expected = upgrade(demo_run)
    assert load_run(run_dir) == expected
    assert load_run(run_dir / "run.json") == expected
    assert load_run(str(run_dir)) == expected
    pair = expected["pairs"]["demo"]
    assert set(pair) - set(demo_run["pairs"]["demo"]) == {"counters", "lesson"}


def test_missing_file_names_the_expected_path(tmp_path: Path) -> None:
    with pytest.raises(RunFileError) as error:
        load_run(tmp_path)
    assert "no such file" in _assert_one_line_naming(error, tmp_path / "run.json")


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(RunFileError) as error:
        load_run(tmp_path / "nope")
    assert "no such file" in _assert_one_line_naming(error, tmp_path / "nope")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty file"),
        (
            '{"schema_version": 1, "run_id": "x",\n  "pairs": {"a": ',
            "not valid JSON (truncated?) at line 2",
        ),
        ('{"schema_version": 1,, }', "not valid JSON (Expecting"),
        ("[1, 2]", "top level is a JSON list"),
        ('{"run_id": "x"}', "missing key schema_version"),
        ('{"schema_version": 3}', "schema_version 3 is not supported (expected 1 or 2)"),
        ('{"schema_version": "1"}', "schema_version '1' is not supported"),
    ],
)
def test_malformed_files_raise_one_line(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "run.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RunFileError) as error:
        load_run(tmp_path)
    assert expected in _assert_one_line_naming(error, path)


def test_truncated_real_run_is_reported_as_truncated(run_dir: Path) -> None:
    path = run_dir / "run.json"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(RunFileError) as error:
        load_run(run_dir)
    assert "not valid JSON (truncated?) at line" in _assert_one_line_naming(error, path)


def _mutated(run: dict[str, Any], change: Any) -> dict[str, Any]:
    broken = copy.deepcopy(run)
    change(broken)
    return broken


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.pop("run_id"), "missing key run_id"),
        (
            lambda r: r["pairs"]["demo"]["trials"][3].pop("elapsed_s"),
            "missing key pairs.demo.trials[3].elapsed_s",
        ),
        (
            lambda r: r["pairs"]["demo"]["trials"][0].update(histogram="not base64!"),
            "pairs.demo.trials[0].histogram: not a valid encoded HdrHistogram",
        ),
        (
            lambda r: r["pairs"]["demo"]["trials"][1].update(requests="300"),
            "pairs.demo.trials[1].requests: Input should be a valid integer",
        ),
        (
            lambda r: r["pairs"]["demo"]["trials"][2].update(variant="eager"),
            "trials[2].variant 'eager' is not one of the variants",
        ),
        (lambda r: r.update(status="paused"), "status: Input should be"),
        (
            lambda r: r["pairs"]["demo"]["expectation"].update(knob="min"),
            'expectation.knob: should be a number or "max"',
        ),
        (
            lambda r: r["pairs"]["demo"]["expectation"].update(metric="p42"),
            "unknown metric 'p42'",
        ),
    ],
)
def test_invalid_content_raises_one_line(
    tmp_path: Path, synth: Any, demo_run: dict, change: Any, expected: str
) -> None:
    path = synth.write(tmp_path, _mutated(demo_run, change))
    with pytest.raises(RunFileError) as error:
        load_run(path)
    assert expected in _assert_one_line_naming(error, path)


def test_error_carries_the_input_error_exit_code(tmp_path: Path) -> None:
    with pytest.raises(RunFileError) as error:
        load_run(tmp_path)
    assert error.value.exit_code == 2


def test_unknown_extra_keys_are_accepted(tmp_path: Path, synth: Any, demo_run: dict) -> None:
    extended = _mutated(demo_run, lambda r: r.update(future_field={"x": 1}))
    assert load_run(synth.write(tmp_path, extended))["future_field"] == {"x": 1}


def test_a_pair_without_expectation_loads(tmp_path: Path, synth: Any, demo_run: dict) -> None:
    run = _mutated(demo_run, lambda r: r["pairs"]["demo"].update(expectation=None))
    assert load_run(synth.write(tmp_path, run))["pairs"]["demo"]["expectation"] is None
