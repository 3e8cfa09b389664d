"""The notebooks (notebooks/, docs/api.md): committed without outputs, and run by the README's
test command.

Running them is nbmake's job (pyproject.toml: `--nbmake`, testpaths), each notebook one test
item; these tests check what would let that silently stop: outputs committed, or the notebooks
no longer collected by a plain `pytest`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("notebooks/talk.ipynb", "notebooks/workshop.ipynb")


def _committed() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return sorted(listed.stdout.split())


def test_every_committed_notebook_is_without_outputs_and_execution_counts() -> None:
    committed = _committed()
    assert set(NOTEBOOKS) <= set(committed)
    found = []
    for path in committed:
        notebook = json.loads((ROOT / path).read_text(encoding="utf-8"))
        for index, cell in enumerate(notebook["cells"]):
            if cell["cell_type"] != "code":
                continue
            if cell.get("outputs"):
                found.append(f"{path}: cell {index} has outputs")
            if cell.get("execution_count") is not None:
                found.append(f"{path}: cell {index} has an execution count")
    assert found == []


def test_a_plain_pytest_runs_the_notebooks() -> None:
    """The README's `.venv/bin/pytest` collects them: `--nbmake` and the folder are configured."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    options = config["tool"]["pytest"]["ini_options"]
    assert "notebooks" in options["testpaths"] and "--nbmake" in options["addopts"].split()
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    collected = subprocess.run(
        [*command, "notebooks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    items = {line.split("::")[0] for line in collected.stdout.splitlines() if "::" in line}
    assert items == set(NOTEBOOKS)


def test_the_workshop_notebook_has_a_section_for_every_built_in_pair() -> None:
    """A pair added to the package brings its workshop section (docs/architecture.md, "The pair
    contract"): a heading, its declaration and a live measurement, `measure("<pair>", ...)`."""
    from pairbench.targets.registry import load_pairs

    notebook = json.loads((ROOT / "notebooks/workshop.ipynb").read_text(encoding="utf-8"))
    code = "\n".join(
        "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"
    )
    built_in = [
        name
        for name, pair in load_pairs().items()
        if pair.bad.handler.__module__.startswith("pairbench.targets.pairs.")
    ]
    assert built_in
    missing = [name for name in built_in if f'measure("{name}"' not in code]
    assert missing == [], f"notebooks/workshop.ipynb has no measure(...) section for {missing}"
