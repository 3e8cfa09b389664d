"""Capacity: the ladder climbs until the SLO breaks, and reports the last rate that held.

The ladder climbs on a fixture pair (tests/fixtures/pairs/fixture_busy.py, loaded through
PAIRBENCH_PAIRS), so adding or removing a built-in pair never breaks this test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pairbench.results.io.runfile import load_run

FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
PAIR = "fixture_busy"
# 10 ms of busy waiting on the event loop per request: one loop cannot serve 100 req/s, so the
# ladder must stop below that whatever the machine (it can only stop earlier on a slower one).
SCENARIO = """
pair = "fixture_busy"
request = "/fixture_busy/{variant}?ms={knob}"

[capacity]
knob = 10
slo_p99_ms = 100
start_rate = 10
step_factor = 2.0
max_rate = 640
step_seconds = 1.0
connections = 16

[profiles.quick]
knob_values = [10]
users = 1
round_seconds = 1
rounds = 1
"""


def test_capacity_stops_at_the_first_step_over_the_slo(
    pairbench: list[str], server_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / f"{PAIR}.toml").write_text(SCENARIO)
    env = {
        **server_env,
        "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS),
        "PAIRBENCH_SCENARIOS": str(tmp_path / "scenarios"),
    }
    result = subprocess.run(
        [*pairbench, "capacity", PAIR, "--out", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "out").iterdir()
    found = load_run(run_dir)["pairs"][PAIR]["capacity"]
    assert found["knob"] == 10 and sorted(found["order"]) == ["awaiting", "blocking"]
    blocking = found["variants"]["blocking"]
    steps = blocking["steps"]
    assert [s["rate"] for s in steps] == [10 * 2**i for i in range(len(steps))]
    assert not steps[-1]["meets_slo"] and steps[-1]["reasons"]  # stopped by a failing step
    assert all(s["meets_slo"] for s in steps[:-1])
    assert blocking["capacity_rate"] is None or blocking["capacity_rate"] < 100
    assert blocking["capacity_rate"] == (steps[-2]["rate"] if len(steps) > 1 else None)
    for s in steps[:-1]:
        assert s["p99_ms"] <= 100 and abs(s["achieved_rate"] - s["rate"]) / s["rate"] < 0.05
    assert "capacity" in result.stderr and "blocking" in result.stderr
