"""Usage errors: one line naming what is wrong and where, exit code 2, never a traceback.

The pair named is a fixture pair (tests/fixtures/pairs/, loaded through PAIRBENCH_PAIRS) with a
scenario in a folder of the test's own, so adding or removing a built-in pair never breaks them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
PAIR = "fixture_rows"
SCENARIO = f"""
pair = "{PAIR}"
request = "/{PAIR}/{{variant}}?n={{knob}}"

[profiles.quick]
knob_values = [1, 40]
users = 1
round_seconds = 1
rounds = 1
"""


@pytest.fixture
def fixture_env(tmp_path: Path) -> dict[str, str]:
    """The fixture pairs, and a scenario folder of the test's own with one for PAIR."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / f"{PAIR}.toml").write_text(SCENARIO)
    return {
        **os.environ,
        "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS),
        "PAIRBENCH_SCENARIOS": str(scenarios),
    }


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


def test_unknown_pair(pairbench: list[str], fixture_env: dict[str, str]) -> None:
    _assert_usage_error(
        _run(pairbench, "run", "no_such_pair", env=fixture_env),
        "unknown pair 'no_such_pair'",
        PAIR,
    )


def test_bad_flag(pairbench: list[str]) -> None:
    _assert_usage_error(_run(pairbench, "run", "--bogus"), "--bogus", "pairbench run --help")


def test_unknown_profile(pairbench: list[str], fixture_env: dict[str, str]) -> None:
    result = _run(pairbench, "run", PAIR, "--profile", "huge", env=fixture_env)
    _assert_usage_error(result, "huge", "quick")


def test_bad_flag_value(pairbench: list[str]) -> None:
    _assert_usage_error(_run(pairbench, "serve", "--port", "70000"), "--port", "70000")


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        (f"pair = '{PAIR}'\nrequest = \n", ("not valid TOML",)),
        (
            f"pair = '{PAIR}'\nrequest = '/{PAIR}/{{variant}}?n={{knob}}'\n"
            "[profiles.quick]\nknob_values = [1]\nusers = 0\nround_seconds = 1\nrounds = 1\n",
            ("profiles.quick.users", "greater than or equal to 1"),
        ),
        (
            f"pair = '{PAIR}'\nrequest = '/{PAIR}/{{variant}}?n={{knob}}'\nbogus_key = 1\n"
            "[profiles.quick]\nknob_values = [1]\nusers = 1\nround_seconds = 1\nrounds = 1\n",
            ("bogus_key", "Extra inputs"),
        ),
    ],
)
def test_malformed_scenario(
    pairbench: list[str],
    fixture_env: dict[str, str],
    content: str,
    fragments: tuple[str, ...],
) -> None:
    path = Path(fixture_env["PAIRBENCH_SCENARIOS"]) / f"{PAIR}.toml"
    path.write_text(content)
    result = _run(pairbench, "run", PAIR, env=fixture_env)
    _assert_usage_error(result, str(path), *fragments)


def test_report_on_missing_run(pairbench: list[str], tmp_path: Path) -> None:
    result = _run(pairbench, "report", str(tmp_path / "nothing-here"))
    _assert_usage_error(result, "nothing-here")


def test_list_shows_pairs_variants_and_knobs(
    pairbench: list[str], fixture_env: dict[str, str]
) -> None:
    result = _run(pairbench, "list", env=fixture_env)
    assert result.returncode == 0, result.stderr
    for text in (
        PAIR,
        "per_row",
        "join",
        "batched",
        "parents per page",
        "1, 40",
        "quick",
    ):
        assert text in result.stdout


def test_the_command_table_names_every_command_and_its_module() -> None:
    """main.COMMAND_MODULES is what lets a command load alone: it must match the registrations."""
    import importlib

    from pairbench.cli.main import COMMAND_MODULES, main

    for module in set(COMMAND_MODULES.values()):
        importlib.import_module(f"pairbench.cli.{module}")
    assert set(main.commands) == set(COMMAND_MODULES)
    for name, command in main.commands.items():
        assert command.callback is not None
        defined = command.callback.__module__
        if isinstance(command, click.Group):  # a group's callback may be a bare passthrough
            defined = next(iter(command.commands.values())).callback.__module__  # type: ignore[union-attr]
        assert defined == f"pairbench.cli.{COMMAND_MODULES[name]}", name


@pytest.mark.parametrize("module", ["commands", "workshop", "new", "doctor"])
def test_a_command_module_loads_without_the_reader(module: str) -> None:
    """`pairbench list`, `workshop init`... start without scipy and matplotlib (a second each)."""
    probe = (
        f"import sys; import pairbench.cli.{module};"
        " print(sorted(m for m in ('scipy', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
