"""examples/own_service runs as its README says: the sample app started by the example,
measured by `pairbench run` in own-service mode, then compared and gated like any stored run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pairbench import errors, runmodel

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "own_service" / "run.py"


def _example(out: Path) -> subprocess.CompletedProcess[str]:
    # The gate profile: one knob value, short rounds (search.toml).
    return subprocess.run(
        [sys.executable, str(EXAMPLE), "--profile", "gate", "--rounds", "2", "--out", str(out)],
        env={**os.environ, "PAIRBENCH_FIGURE_PROCESSES": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_example_measures_compares_and_gates(pairbench: list[str], tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        result = _example(tmp_path / name)
        assert result.returncode == 0, result.stderr
        assert "search: verified" in result.stderr and "expectation PASS" in result.stderr
        (run_dir,) = (tmp_path / name).iterdir()
        runs.append(run_dir)
    run = json.loads((runs[0] / "run.json").read_text())
    target = run["metadata"]["target"]
    assert target["kind"] == "own_service" and target["version"] is None
    assert target["seeding"] == "never: a service of your own"
    pair = run["pairs"]["search"]
    assert [v["label"] for v in pair["variants"]] == [
        "scan every name per request",
        "an index built at start-up",
    ]
    assert pair["equivalence"] == {"rule": "json"} and pair["verification"]["passed"]
    assert {c["name"] for c in pair["verification"]["checks"]} == {"status", "equal_body"}
    assert len(pair["trials"]) == 1 * 2 * 2  # knob values x rounds x variants
    assert all(t["valid"] and t["requests"] > 0 for t in pair["trials"])
    documented = (ROOT / "docs" / "run-format.md").read_text(encoding="utf-8")
    assert runmodel.undocumented_paths(run, documented) == []
    compared = subprocess.run(
        [*pairbench, "compare", str(runs[0]), str(runs[1])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compared.returncode == 0, compared.stderr
    assert "search" in compared.stdout + compared.stderr
    gated = subprocess.run(
        [*pairbench, "gate", "--baseline", str(runs[0]), str(runs[1]), "--min-effect", "1.0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # The same app twice: no 100% slowdown; with two rounds the gate may call it inconclusive.
    assert gated.returncode in (errors.EXIT_OK, errors.EXIT_UNTRUSTED), gated.stderr
    assert "search" in gated.stdout + gated.stderr
