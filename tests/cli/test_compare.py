"""`pairbench compare` and `pairbench gate` on stored runs, run as the user runs them.

The runs are synthetic but real: HdrHistograms recorded from seeded log-normal latencies, in
the documented run.json format, for a neutral pair ("demo"). The last test re-runs a real (tiny)
experiment on a fixture pair (tests/fixtures/pairs/, loaded through PAIRBENCH_PAIRS), so adding or
removing a built-in pair never breaks these tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

ROUNDS = 4
KNOBS = (1, 50)
REQUESTS = 200
USERS = 4
VARIANTS = ({"name": "lazy", "role": "bad"}, {"name": "join", "role": "good"})


def typical_ms(variant: str, knob: float) -> float:
    return {"lazy": 1.0 + 0.5 * knob, "join": 1.0}[variant]


PAIRBENCH = [sys.executable, "-m", "pairbench"]
FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"


def histogram(values_us: np.ndarray) -> str:
    recorded = HdrHistogram(1, 60_000_000, 3)
    for value in values_us:
        recorded.record_value(max(1, round(value)))
    return str(recorded.encode().decode("ascii"))


def write_run(folder: Path, run_id: str, seed: int, slow_join: float = 1.0) -> Path:
    """A complete one-pair run; `slow_join` makes the good variant that much slower."""
    rng = np.random.default_rng(seed)
    trials = []
    for knob in KNOBS:
        for round_index in range(ROUNDS):
            for position, variant in enumerate(VARIANTS):
                name = variant["name"]
                factor = slow_join if name == "join" else 1.0
                typical_us = typical_ms(name, knob) * factor * 1000 * rng.lognormal(0.0, 0.05)
                values = typical_us * rng.lognormal(0.0, 0.2, REQUESTS)
                trials.append(
                    {
                        "knob": knob,
                        "round": round_index,
                        "position": position,
                        "variant": name,
                        "users": USERS,
                        "started_at": 1_700_000_000.0 + len(trials),
                        "elapsed_s": REQUESTS * typical_us / 1e6 / USERS,
                        "requests": REQUESTS,
                        "errors": 0,
                        "histogram": histogram(values),
                        "bystander": None,
                        "generator_cpu_percent": 30.0,
                        "counters": {"queries": (1 + knob if name == "lazy" else 1) * REQUESTS},
                        "valid": True,
                        "invalid_reasons": [],
                    }
                )
    pair = {
        "title": "N+1 queries",
        "description": "One query per row.",
        "variants": [{**v, "label": v["name"]} for v in VARIANTS],
        "bad": "lazy",
        "knob": {
            "name": "n",
            "label": "rows",
            "unit": "rows",
            "values": list(KNOBS),
            "log_scale": True,
        },
        "load": {
            "model": "closed",
            "users": USERS,
            "warmup_seconds": 0.5,
            "round_seconds": 1.0,
            "rounds": ROUNDS,
        },
        "expectation": {"metric": "p50", "knob": "max", "min_ratio": 3.0},
        "verification": {"passed": True, "checks": []},
        "trials": trials,
    }
    run = {
        "schema_version": 1,
        "run_id": run_id,
        "status": "complete",
        "started_at": "2025-01-01T12:00:00Z",
        "finished_at": "2025-01-01T12:01:00Z",
        "profile": "quick",
        "seed": seed,
        "command": ["pairbench", "run"],
        "metadata": {"machine": {"cpu_model": "Test CPU", "cores": 2}},
        "pairs": {"demo": pair},
    }
    target = folder / run_id
    target.mkdir(parents=True)
    (target / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return target


def pairbench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PAIRBENCH, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env or dict(os.environ),
    )


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write_run(tmp_path, "base", seed=1)


def test_compare_prints_a_table_and_exits_zero(tmp_path: Path, base: Path) -> None:
    new = write_run(tmp_path, "new", seed=2, slow_join=1.3)
    result = pairbench("compare", str(base), str(new))
    assert result.returncode == 0, result.stderr
    assert "demo: new / baseline" in result.stdout
    join_p50 = [line for line in result.stdout.splitlines() if "join" in line and "n=50" in line]
    assert any("p50 (ms)" in line and "slower" in line for line in join_p50), result.stdout
    assert "comparisons of new against base: " in result.stdout


def test_gate_a_a_passes(tmp_path: Path, base: Path) -> None:
    new = write_run(tmp_path, "again", seed=2)
    result = pairbench("gate", "--baseline", str(base), str(new))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "gate PASS (1 pass)"
    assert (new / "gate.md").read_text(encoding="utf-8").startswith("# pairbench gate: PASS")
    ET.parse(new / "junit.xml")


def test_gate_fails_on_a_slower_good_variant(tmp_path: Path, base: Path) -> None:
    new = write_run(tmp_path, "slow", seed=2, slow_join=1.3)
    out = tmp_path / "reports"
    result = pairbench("gate", "--baseline", str(base), str(new), "--out", str(out))
    assert result.returncode == 1, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("pairbench: error: gate REGRESSION (1 regression): demo: ")
    assert "worst: join " in line
    assert "| demo | regression |" in (out / "gate.md").read_text(encoding="utf-8")
    (failure,) = ET.parse(out / "junit.xml").getroot().iter("failure")
    assert "join" in (failure.text or "")
    assert not (new / "gate.md").exists()  # --out wins


def test_gate_on_invalid_data_is_inconclusive(tmp_path: Path, base: Path) -> None:
    new = write_run(tmp_path, "invalid", seed=2)
    run = json.loads((new / "run.json").read_text(encoding="utf-8"))
    for trial in run["pairs"]["demo"]["trials"]:
        trial.update(valid=False, invalid_reasons=["generator CPU 97% > 90%"])
    (new / "run.json").write_text(json.dumps(run), encoding="utf-8")
    result = pairbench("gate", "--baseline", str(base), str(new))
    assert result.returncode == 3, result.stderr
    assert "gate INCONCLUSIVE" in result.stderr
    (error,) = ET.parse(new / "junit.xml").getroot().iter("error")
    assert error.get("type") == "inconclusive"


@pytest.mark.parametrize("command", ["compare", "gate"])
def test_a_truncated_run_is_one_line_and_exit_two(tmp_path: Path, base: Path, command: str) -> None:
    new = write_run(tmp_path, "cut", seed=2)
    run_json = new / "run.json"
    text = run_json.read_text(encoding="utf-8")
    run_json.write_text(text[: len(text) // 3], encoding="utf-8")
    args = [str(base), str(new)] if command == "compare" else ["--baseline", str(base), str(new)]
    result = pairbench(command, *args)
    assert result.returncode == 2, result
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"pairbench: error: {run_json}: not valid JSON (truncated?)")
    assert "Traceback" not in result.stderr


def test_gate_refuses_a_bad_flag_value(tmp_path: Path, base: Path) -> None:
    result = pairbench("gate", "--baseline", str(base), "--min-effect", "-1")
    assert result.returncode == 2
    assert "--min-effect" in result.stderr and len(result.stderr.strip().splitlines()) == 1


TINY_SCENARIO = """
pair = "fixture_rows"
request = "/fixture_rows/{variant}?n={knob}"

[expectation]
metric = "p50"
at = "max"
min_ratio = 1.0

[profiles.quick]
knob_values = [1, 20]
users = 2
warmup_seconds = 0.1
trial_warmup_seconds = 0.1
round_seconds = 0.2
rounds = 2
"""


def test_gate_without_new_reruns_the_baseline(server_env: dict[str, str], tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "fixture_rows.toml").write_text(TINY_SCENARIO, encoding="utf-8")
    env = {
        **server_env,
        "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS),
        "PAIRBENCH_SCENARIOS": str(scenarios),
    }
    first = pairbench("run", "fixture_rows", "--out", str(tmp_path / "a"), "--no-progress", env=env)
    assert first.returncode == 0, first.stderr
    (base_dir,) = (tmp_path / "a").iterdir()
    # A min effect no A/A can reach: the verdict is known, the test is about the re-run.
    result = pairbench(
        "gate",
        "--baseline",
        str(base_dir),
        "--runs",
        str(tmp_path / "b"),
        "--min-effect",
        "9",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    (new_dir,) = (tmp_path / "b").iterdir()
    assert (
        "**Weaker design**: two runs made at different times" in (new_dir / "gate.md").read_text()
    )
    new = json.loads((new_dir / "run.json").read_text(encoding="utf-8"))
    assert new["reproduces"] == base_dir.name
    assert (new_dir / "gate.md").exists() and (new_dir / "junit.xml").exists()
    assert (new_dir / "report.html").exists()
