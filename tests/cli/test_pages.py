"""`pairbench pages`: the committed pages match the code, and a changed declaration is caught.

The drift tests generate pages into a folder of the test's own, with a fixture pair (a copy of
tests/fixtures/pairs/fixture_rows.py, loaded through PAIRBENCH_PAIRS) and a scenario of the
test's own, then edit the copy's declarations and run `--check`. Nothing in the repository is
written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs" / "pairs"
FIXTURE_PAIR = REPO / "tests" / "fixtures" / "pairs" / "fixture_rows.py"
PAIR = "fixture_rows"
# A stored run without the fixture pair: its page says so; one stored pair is drawn.
STORED_RUN = REPO / "tests" / "fixtures" / "run-v1"
SCENARIO = f"""
pair = "{PAIR}"
request = "/{PAIR}/{{variant}}?n={{knob}}"

[mechanism.queries]
per_row = {{ base = 1, per_knob = 1 }}
join = {{ base = 1 }}
batched = {{ base = 2 }}

[profiles.quick]
knob_values = [1, 40]
users = 1
round_seconds = 1
rounds = 1
"""
TIMEOUT_S = 180


def _pages(
    pairbench: list[str], *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pairbench, "pages", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env or dict(os.environ),
        timeout=TIMEOUT_S,
    )


def test_the_committed_pages_match_the_code(pairbench: list[str]) -> None:
    # The built-in pairs only: a developer's own PAIRBENCH_PAIRS would have no committed page.
    env = {k: v for k, v in os.environ.items() if k != "PAIRBENCH_PAIRS"}
    done = _pages(pairbench, "--check", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "match the code and the run" in done.stdout
    pages = sorted(COMMITTED.glob("*.md"))
    assert len(pages) >= 2  # the index and at least one pair
    for page in pages:
        text = page.read_text(encoding="utf-8")
        # Nothing that varies per machine or per run of the generator.
        assert str(REPO) not in text, page
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text), page
        for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):
            assert (COMMITTED / image).is_file(), f"{page.name}: {image}"


@pytest.fixture(scope="module")
def generated(pairbench: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pages generated with the fixture pair, from a copy of STORED_RUN, in a folder of the
    module's own (which also holds the pair's copy and its scenario)."""
    root = tmp_path_factory.mktemp("pages")
    (root / "pairs").mkdir()
    shutil.copy(FIXTURE_PAIR, root / "pairs" / FIXTURE_PAIR.name)
    (root / "scenarios").mkdir()
    (root / "scenarios" / f"{PAIR}.toml").write_text(SCENARIO)
    # Beside the pages: they link the run relatively, so a copy of the folder stays the same.
    shutil.copytree(STORED_RUN, root / "run")
    done = _pages(pairbench, str(root / "run"), "--out", str(root / "out"), env=_env(root))
    assert done.returncode == 0, done.stderr
    return root


def _env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PAIRBENCH_PAIRS": str(root / "pairs"),
        "PAIRBENCH_SCENARIOS": str(root / "scenarios"),
    }


@pytest.fixture
def copy(generated: Path, tmp_path: Path) -> Path:
    """A test's own copy of the generated folder, to edit."""
    return Path(shutil.copytree(generated, tmp_path / "copy"))


def _check(
    pairbench: list[str], root: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return _pages(
        pairbench, str(root / "run"), "--out", str(root / "out"), "--check", env=env or _env(root)
    )


def _drifting(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines naming a page that drifts (the notes about missing runs excluded)."""
    return [line for line in done.stdout.splitlines() if "no stored run" not in line]


def test_a_page_shows_the_declarations_and_says_there_is_no_run(generated: Path) -> None:
    page = (generated / "out" / f"{PAIR}.md").read_text(encoding="utf-8")
    assert "One query for the parents, then one per parent (1+n round trips)." in page
    assert "--- per_row\n+++ join" in page  # the fix, as the lines that differ
    assert "| `queries` | per_row | 1 + n |" not in page  # no run: no measured table
    assert "has no stored run yet" in page
    assert f"`{PAIR}.toml`" in page and str(generated) not in page
    index = (generated / "out" / "README.md").read_text(encoding="utf-8")
    assert f"({PAIR}.md)" in index and "no stored run yet" in index
    # The run's own pair has its figures drawn, and its page links them.
    images = sorted((generated / "out" / "img").glob("*.png"))
    assert images
    for image in images:
        assert any(f"img/{image.name}" in p.read_text() for p in (generated / "out").glob("*.md"))


def test_unchanged_declarations_pass_and_the_missing_run_is_reported(
    pairbench: list[str], copy: Path
) -> None:
    done = _check(pairbench, copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{PAIR}.md: pair {PAIR} has no stored run" in done.stdout


def test_a_changed_label_is_drift_naming_the_page(pairbench: list[str], copy: Path) -> None:
    module = copy / "pairs" / FIXTURE_PAIR.name
    text = module.read_text()
    assert '"""One LEFT JOIN: a single round trip."""' in text
    module.write_text(text.replace("One LEFT JOIN: a single round trip.", "One LEFT JOIN."))
    done = _check(pairbench, copy)
    assert done.returncode == 1
    assert _drifting(done) == [
        f"{copy / 'out' / (PAIR + '.md')}: differs from the generated page from line "
        + _line_of(copy / "out" / f"{PAIR}.md", "One LEFT JOIN: a single round trip.")
    ]
    assert len(done.stderr.strip().splitlines()) == 1
    assert "1 page(s)" in done.stderr and "Traceback" not in done.stderr


def _line_of(path: Path, fragment: str) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    return str(next(i for i, line in enumerate(lines, 1) if fragment in line))


def test_a_changed_mechanism_rule_is_drift(pairbench: list[str], copy: Path) -> None:
    scenario = copy / "scenarios" / f"{PAIR}.toml"
    scenario.write_text(
        scenario.read_text().replace("batched = { base = 2 }", "batched = { base = 3 }")
    )
    done = _check(pairbench, copy)
    assert done.returncode == 1
    assert [line.split(": ")[0] for line in _drifting(done)] == [str(copy / "out" / f"{PAIR}.md")]


def test_missing_pages_images_and_stale_pages_are_named(pairbench: list[str], copy: Path) -> None:
    out = copy / "out"
    (out / f"{PAIR}.md").unlink()
    image = next((out / "img").glob("*.png"))
    image.unlink()
    done = _check(pairbench, copy)
    assert done.returncode == 1
    lines = _drifting(done)
    assert f"{out / (PAIR + '.md')}: missing" in lines
    assert any(line.endswith(f"its image img/{image.name} does not exist") for line in lines)
    # Without PAIRBENCH_PAIRS the fixture pair is gone: its page is stale.
    (copy / "pairs" / FIXTURE_PAIR.name).unlink()
    shutil.copy(out / "README.md", out / f"{PAIR}.md")  # a generated page no pair owns
    done = _check(pairbench, copy)
    assert done.returncode == 1
    assert f"{out / (PAIR + '.md')}: no pair of that name in the registry (a stale page)" in (
        done.stdout.splitlines()
    )


def test_a_missing_run_is_one_line_and_exit_2(pairbench: list[str], tmp_path: Path) -> None:
    done = _pages(pairbench, str(tmp_path / "no-run"), "--check")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no-run" in done.stderr and "Traceback" not in done.stderr
