"""End to end: a tiny `pairbench run` writes a valid run.json and plots, and replays one.

Interrupts, kills and a full results folder are in tests/faults/test_fault_matrix.py.

The runs use a fixture pair (tests/fixtures/pairs/, loaded through PAIRBENCH_PAIRS) with a
scenario in a folder of the test's own: adding or removing a built-in pair never breaks them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from pairbench import runmodel
from pairbench.harness import runner
from pairbench.results.analysis import stopping
from pairbench.results.io.runfile import load_run

FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
PAIRS_ENV = {"PAIRBENCH_PAIRS": str(FIXTURE_PAIRS)}
PAIR = "fixture_rows"

RUN_FORMAT = Path(__file__).resolve().parents[2] / "docs" / "run-format.md"

TINY = """
pair = "fixture_rows"
request = "/fixture_rows/{{variant}}?n={{knob}}"

[expectation]
metric = "p50"
at = "max"
min_ratio = 1.0

[mechanism.queries]
per_row = {{ base = 1, per_knob = 1 }}
join = {{ base = 1 }}
batched = {{ base = 2 }}

[profiles.quick]
knob_values = [1, 40]
users = 2
warmup_seconds = 0.1
trial_warmup_seconds = 0.1
round_seconds = {seconds}
rounds = {rounds}
"""


def _scenarios(folder: Path, seconds: float, rounds: int) -> dict[str, str]:
    folder.mkdir(exist_ok=True)
    (folder / f"{PAIR}.toml").write_text(TINY.format(seconds=seconds, rounds=rounds))
    return {**PAIRS_ENV, "PAIRBENCH_SCENARIOS": str(folder)}


def test_tiny_run_writes_run_json_and_plots(
    pairbench: list[str], server_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**server_env, **_scenarios(tmp_path / "scenarios", 0.3, 2)}
    out = tmp_path / "out"
    result = subprocess.run(
        [*pairbench, "run", PAIR, "--out", str(out), "--seed", "7", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    (run_dir,) = out.iterdir()
    run = load_run(run_dir)
    assert run["status"] == "complete" and run["seed"] == 7
    pair = run["pairs"][PAIR]
    assert pair["verification"]["passed"]
    trials = pair["trials"]
    assert len(trials) == 2 * 2 * 3  # knob values x rounds x variants
    for knob in (1, 40):
        for round_index in range(2):
            in_round = [t for t in trials if t["knob"] == knob and t["round"] == round_index]
            assert sorted(t["variant"] for t in in_round) == ["batched", "join", "per_row"]
            assert sorted(t["position"] for t in in_round) == [0, 1, 2]
    for trial in trials:
        histogram = HdrHistogram.decode(trial["histogram"])
        assert histogram.get_total_count() == trial["requests"] - trial["errors"] > 0
        assert trial["counters"]["queries"] > 0
    bad_40 = [t for t in trials if t["variant"] == "per_row" and t["knob"] == 40]
    per_request = sum(t["counters"]["queries"] for t in bad_40) / sum(t["requests"] for t in bad_40)
    assert 35 < per_request < 47  # 41 per request, give or take requests across the window edges
    assert run["metadata"]["postgres"]["dsn"].count("***") == 1
    for name in (f"{PAIR}-scaling.png", f"{PAIR}-spectrum.png", "report.md"):
        assert (run_dir / name).stat().st_size > 1000
    assert "per_row / " in result.stderr  # the end-of-run summary
    # What the results need to render with no per-pair or per-counter code of their own.
    assert "dataset" not in run["metadata"]
    dataset = pair["dataset"]
    assert dataset["rows"]["fixture_parents"] == dataset["sizes"]["parents"] > 0
    assert dataset["identity"]["sizes"] == dataset["sizes"] and "seed" in dataset["identity"]
    assert pair["lesson"][0] == "queries" and pair["equivalence"] == {"rule": "json"}
    assert pair["counters"]["queries"]["kind"] == "delta" and "peak_rss" in pair["counters"]
    assert "reference" in pair
    assert runner.replay_dataset(run) == (
        dataset["identity"]["seed"],
        {PAIR: dataset["sizes"]},
    )
    # Where the time went: each trial's load covers its window, the pair's totals add up, and
    # the log says it in one line (docs/architecture.md, "Measurement protocol").
    timing = pair["timing"]
    assert timing["trials"] == len(trials)
    assert all(t["load_s"] >= t["elapsed_s"] and t["overhead_s"] >= 0 for t in trials)
    assert timing["load_s"] == pytest.approx(sum(t["load_s"] for t in trials), abs=0.01)
    assert timing["warmup_s"] > 0 and timing["verify_s"] > 0 and timing["overhead_s"] > 0
    assert f"{PAIR}: {len(trials)} trials, {timing['load_s']:.1f} s under load" in result.stderr
    startup = run["metadata"]["timing"]
    assert {"describe_s", "services_s", "seeding_s", "target_s"} <= set(startup)
    # The agent started beside the verification: the run waited for less than its start took.
    assert 0 <= startup["agent_wait_s"] < startup["agent_ready_s"]
    # The command's checks and its end: written with the analysis, in run.json's last write.
    assert startup["checks_s"] > 0 and startup["render_s"] > startup["analysis_s"] >= 0
    assert (
        "analysis" in pair
        and (run_dir / "report.html").stat().st_mtime <= (run_dir / "run.json").stat().st_mtime
    )
    # Every key the run wrote, as stored (not upgraded), is documented.
    stored = json.loads((run_dir / "run.json").read_text())
    assert runmodel.undocumented_paths(stored, RUN_FORMAT.read_text(encoding="utf-8")) == []


def test_from_replays_the_stored_configuration(
    pairbench: list[str], server_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**server_env, **_scenarios(tmp_path / "scenarios", 0.2, 3)}
    first = subprocess.run(
        [*pairbench, "run", PAIR, "--rounds", "2", "--out", str(tmp_path / "a"), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert first.returncode == 0, first.stderr
    (base_dir,) = (tmp_path / "a").iterdir()
    # Today's scenario files change; the replay must use the stored ones, not these.
    (tmp_path / "scenarios" / f"{PAIR}.toml").write_text("broken = [")
    second = subprocess.run(
        [*pairbench, "run", "--from", str(base_dir), "--out", str(tmp_path / "b"), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert second.returncode == 0, second.stderr
    (new_dir,) = (tmp_path / "b").iterdir()
    base, new = load_run(base_dir), load_run(new_dir)
    assert new["reproduces"] == base["run_id"] and new["seed"] == base["seed"]
    # `--rounds 2` overrode the profile's 3 and the replay keeps it.
    assert base["rounds"] == new["rounds"] == 2
    for run in (base, new):
        stops = run["pairs"][PAIR]["stopping"]
        assert stops["rule"] is None
        assert {k: s["rounds"] for k, s in stops["knobs"].items()} == {"1": 2, "40": 2}
        assert {s["reason"] for s in stops["knobs"].values()} == {"fixed"}
    assert new["profile_config"] == base["profile_config"]
    order = [
        (t["knob"], t["round"], t["position"], t["variant"]) for t in base["pairs"][PAIR]["trials"]
    ]
    assert order == [
        (t["knob"], t["round"], t["position"], t["variant"]) for t in new["pairs"][PAIR]["trials"]
    ]
    bad = subprocess.run(
        [*pairbench, "run", PAIR, "--from", str(base_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--from" in bad.stderr


def _run_scenario(
    pairbench: list[str], server_env: dict[str, str], tmp_path: Path, scenario: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`pairbench run` of the fixture pair with this scenario text; the result and its folder."""
    (tmp_path / f"{PAIR}.toml").write_text(scenario)
    env = {**server_env, **PAIRS_ENV, "PAIRBENCH_SCENARIOS": str(tmp_path)}
    out = tmp_path / "out"
    result = subprocess.run(
        [*pairbench, "run", PAIR, "--out", str(out), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    (run_dir,) = out.iterdir()
    return result, run_dir


def test_failed_verification_exits_1_naming_the_check(
    pairbench: list[str], server_env: dict[str, str], tmp_path: Path
) -> None:
    # Claim that per_row sends one query whatever n: the counters will disagree.
    scenario = TINY.format(seconds=0.2, rounds=1).replace(
        "per_row = { base = 1, per_knob = 1 }", "per_row = { base = 1 }"
    )
    result, run_dir = _run_scenario(pairbench, server_env, tmp_path, scenario)
    assert result.returncode == 1, result.stderr
    assert "verification FAILED" in result.stderr and "queries_per_request" in result.stderr
    assert "at n=1 for per_row: queries: 2, expected 1" in result.stderr  # the first failing check
    assert load_run(run_dir)["pairs"][PAIR]["trials"] == []  # a pair that fails is not measured


def test_untrustworthy_trials_exit_3_and_say_why(
    pairbench: list[str], server_env: dict[str, str], tmp_path: Path
) -> None:
    # A CPU limit no generator can meet: every trial is invalid, nothing can be judged.
    scenario = TINY.format(seconds=0.2, rounds=1) + "max_generator_cpu_percent = 0.001\n"
    result, run_dir = _run_scenario(pairbench, server_env, tmp_path, scenario)
    assert result.returncode == 3, result.stderr
    assert f"no valid data to judge {PAIR}" in result.stderr
    trials = load_run(run_dir)["pairs"][PAIR]["trials"]
    assert trials and all(
        not t["valid"] and "generator CPU" in t["invalid_reasons"][0] for t in trials
    )


def test_adaptive_rounds_stop_where_the_rule_says(
    pairbench: list[str], server_env: dict[str, str], tmp_path: Path
) -> None:
    """Each knob value runs between min_rounds and max_rounds, and stops at the first round
    whose stored trials satisfy the rule: re-judging the stored record gives the same story."""
    adaptive = TINY.format(seconds=0.2, rounds=1).replace(
        "rounds = 1\n", "min_rounds = 2\nmax_rounds = 4\nprecision = 0.5\n"
    )
    result, run_dir = _run_scenario(pairbench, server_env, tmp_path, adaptive)
    assert result.returncode == 0, result.stderr
    pair = load_run(run_dir)["pairs"][PAIR]
    rule = stopping.Rule(2, 4, 0.5)
    assert pair["stopping"]["rule"] == rule.as_dict()
    assert pair["load"]["rounds"] is None and pair["load"]["max_rounds"] == 4
    for key, stop in pair["stopping"]["knobs"].items():
        at_knob = [t for t in pair["trials"] if float(t["knob"]) == float(key)]
        assert len(at_knob) == 3 * stop["rounds"]  # every variant once a round
        assert 2 <= stop["rounds"] <= 4
        assert (stop["reason"] == "precise") == (stop["open"] == [])
        assert stop["reason"] == "precise" or stop["rounds"] == 4
        # The rule on the stored data: no stop before the recorded round, a stop at it.
        for rounds in range(2, stop["rounds"] + 1):
            seen = {**pair, "trials": [t for t in pair["trials"] if t["round"] < rounds]}
            decision = stopping.judge(seen, float(key), rounds, rule)
            assert decision.stop == (rounds == stop["rounds"]), (key, rounds, decision)
        assert decision.reason == stop["reason"] and decision.open == stop["open"]
    assert f"{PAIR}: rounds (adaptive, 2..4 rounds to +-50%" in result.stderr
    report = (run_dir / "report.md").read_text()
    assert "rounds (adaptive: 2 to 4, until every judged interval is within +-50%)" in report
