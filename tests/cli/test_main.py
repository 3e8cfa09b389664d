"""Usage errors: one line naming what is wrong and where, exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def _run(
    pairbench: list[str], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pairbench, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env or dict(os.environ),
    )


def _assert_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_pair(pairbench: list[str]) -> None:
    _assert_usage_error(
        _run(pairbench, "run", "no_such_pair"), "unknown pair 'no_such_pair'", "n_plus_one"
    )


def test_bad_flag(pairbench: list[str]) -> None:
    _assert_usage_error(_run(pairbench, "run", "--bogus"), "--bogus", "pairbench run --help")


def test_unknown_profile(pairbench: list[str]) -> None:
    _assert_usage_error(_run(pairbench, "run", "n_plus_one", "--profile", "huge"), "huge", "quick")


def test_bad_flag_value(pairbench: list[str]) -> None:
    _assert_usage_error(_run(pairbench, "serve", "--port", "70000"), "--port", "70000")


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("pair = 'n_plus_one'\nrequest = \n", ("not valid TOML",)),
        (
            "pair = 'n_plus_one'\nrequest = '/n_plus_one/{variant}?n={knob}'\n"
            "[profiles.quick]\nknob_values = [1]\nusers = 0\nround_seconds = 1\nrounds = 1\n",
            ("profiles.quick.users", "greater than or equal to 1"),
        ),
        (
            "pair = 'n_plus_one'\nrequest = '/n_plus_one/{variant}?n={knob}'\nbogus_key = 1\n"
            "[profiles.quick]\nknob_values = [1]\nusers = 1\nround_seconds = 1\nrounds = 1\n",
            ("bogus_key", "Extra inputs"),
        ),
    ],
)
def test_malformed_scenario(
    pairbench: list[str], tmp_path: Path, content: str, fragments: tuple[str, ...]
) -> None:
    (tmp_path / "n_plus_one.toml").write_text(content)
    env = {**os.environ, "PAIRBENCH_SCENARIOS": str(tmp_path)}
    result = _run(pairbench, "run", "n_plus_one", env=env)
    _assert_usage_error(result, str(tmp_path / "n_plus_one.toml"), *fragments)


def test_report_on_missing_run(pairbench: list[str], tmp_path: Path) -> None:
    result = _run(pairbench, "report", str(tmp_path / "nothing-here"))
    _assert_usage_error(result, "nothing-here")


def test_list_shows_pairs_variants_and_knobs(pairbench: list[str]) -> None:
    result = _run(pairbench, "list")
    assert result.returncode == 0, result.stderr
    for text in (
        "n_plus_one",
        "lazy",
        "join",
        "batched",
        "dataloader",
        "authors per page",
        "quick",
    ):
        assert text in result.stdout
