"""The interleaved gate end to end: REF's targets built and served beside today's, both
versions' variants in one shuffled order per round, the verdict on paired ratios.

A fixture pair (tests/fixtures/pairs, through PAIRBENCH_PAIRS, which both servers inherit) with
a scenario of the test's own; the baseline is this checkout's HEAD, built by `git archive`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pairbench import runmodel
from pairbench.errors import UsageError
from pairbench.harness import baseline, seeding, services
from pairbench.results.io.runfile import load_run

FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
PAIR = "fixture_rows"
VARIANTS = ["batched", "join", "per_row"]
RUN_FORMAT = Path(__file__).resolve().parents[2] / "docs" / "run-format.md"

SCENARIO = """
pair = "fixture_rows"
request = "/fixture_rows/{variant}?n={knob}"

[expectation]
metric = "p50"
at = "max"
min_ratio = 1.0

[profiles.quick]
knob_values = [20]
users = 2
warmup_seconds = 0.1
trial_warmup_seconds = 0.1
round_seconds = 0.3
rounds = 3
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, servers: services.Endpoints) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("scenarios")
    (folder / f"{PAIR}.toml").write_text(SCENARIO)
    return {
        **os.environ,
        "PAIRBENCH_PG_DSN": servers.pg_dsn,
        "PAIRBENCH_REDIS_URL": servers.redis_url,
        "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS),
        "PAIRBENCH_SCENARIOS": str(folder),
    }


def _gate(
    pairbench: list[str], env: dict[str, str], out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    argv = [*pairbench, "gate", "--baseline-ref", "HEAD", PAIR, "--profile", "quick"]
    argv += ["--runs", str(out), "--seed", "5", "--no-progress", *extra]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def test_both_versions_run_in_every_round_and_an_a_a_gate_passes(
    pairbench: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    done = _gate(pairbench, env, tmp_path)
    assert done.returncode == 0, done.stderr
    (run_dir,) = tmp_path.iterdir()
    run = load_run(run_dir)
    base = run["baseline"]
    head = subprocess.run(
        ["git", "-C", str(FIXTURE_PAIRS), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert base["ref"] == "HEAD" and base["commit"] == head
    assert base["dataset"] == "shared with the new side"
    assert base["server"]["url"] != run["metadata"]["server"]["url"]
    new_trials, base_trials = run["pairs"][PAIR]["trials"], base["pairs"][PAIR]["trials"]
    assert len(new_trials) == len(base_trials) == 3 * 3  # rounds x variants, each side
    for round_index in range(3):
        mine = [t for t in new_trials if t["round"] == round_index]
        theirs = [t for t in base_trials if t["round"] == round_index]
        assert (
            sorted(t["variant"] for t in mine) == sorted(t["variant"] for t in theirs) == VARIANTS
        )
        # One order over both versions' variants: positions 0..5 shared out, and each
        # variant's two versions back to back (ABAB/BABA blocks).
        assert sorted(t["position"] for t in [*mine, *theirs]) == list(range(6))
        for variant in VARIANTS:
            a, b = (t["position"] for t in [*mine, *theirs] if t["variant"] == variant)
            assert abs(a - b) == 1 and min(a, b) % 2 == 0
    # Each server answered its own side's requests: both sides counted queries.
    assert all(t["counters"]["queries"] > 0 for t in [*new_trials, *base_trials])
    assert base["pairs"][PAIR]["verification"]["passed"]
    assert "gate PASS" in done.stdout
    assert (run_dir / "gate.md").read_text().count("Both versions were served side by side") == 1
    assert (run_dir / "junit.xml").exists()
    stored = json.loads((run_dir / "run.json").read_text())
    assert runmodel.undocumented_paths(stored, RUN_FORMAT.read_text()) == []
    # A stored interleaved run is judged again the same way.
    again = subprocess.run(
        [*pairbench, "gate", str(run_dir)], env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and "gate PASS" in again.stdout


def test_a_slowed_variant_fails_the_gate(
    pairbench: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    done = _gate(pairbench, env, tmp_path, "--slow-variant", f"{PAIR}/join=300%")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "gate REGRESSION" in done.stderr and "join p50" in done.stderr
    (run_dir,) = tmp_path.iterdir()
    run = load_run(run_dir)
    assert run["metadata"]["server"]["slowdown"] == {f"{PAIR}/join": 3.0}
    assert "slowdown" not in run["baseline"]["server"]


def test_an_exported_slowdown_never_reaches_the_baseline(
    pairbench: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    done = _gate(pairbench, {**env, "PAIRBENCH_SLOWDOWN": f"{PAIR}/join=300%"}, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    (run_dir,) = tmp_path.iterdir()
    run = load_run(run_dir)
    assert run["metadata"]["server"]["slowdown"] == {f"{PAIR}/join": 3.0}
    assert "slowdown" not in run["baseline"]["server"]


def test_a_ref_that_is_no_commit_is_a_usage_error(
    pairbench: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    argv = [*pairbench, "gate", "--baseline-ref", "no-such-ref-anywhere", PAIR]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "--baseline-ref 'no-such-ref-anywhere': not a commit of" in line
    with pytest.raises(UsageError, match="not a commit"):
        baseline.build("no-such-ref-anywhere")


def test_the_plan_is_the_identity_seeding_stores(
    servers: services.Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAIRBENCH_PAIRS", str(FIXTURE_PAIRS))
    planned = seeding.plan("test", [PAIR])
    seeded = seeding.seed(servers.pg_dsn, "test", [PAIR])
    assert planned == {PAIR: seeded[PAIR].identity}
    assert seeding.plan("test", [PAIR], data_seed=99) != planned


def test_calibrate_stores_what_the_stored_run_gate_then_uses(
    pairbench: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    argv = [*pairbench, "calibrate", PAIR, "--profile", "quick", "--repeats", "2"]
    argv += ["--runs", str(runs), "--seed", "3", "--no-progress"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "calibration of profile quick" in done.stdout
    assert "false alarms of the default gate" in done.stdout
    stored = done.stdout.strip().splitlines()[-1].removeprefix("stored for the gate: ")
    doc = json.loads(Path(stored).read_text())
    rows = doc["pairs"][PAIR]["interleaved"]
    assert sorted(r["variant"] for r in rows) == VARIANTS
    assert all(r["rounds"] == 3 and r["log_sd"] is not None for r in rows)
    assert doc["patterns"] == 2**3 and len(doc["separate_runs"]) == 2
    assert doc["pairs"][PAIR]["between_run"] and doc["pairs"][PAIR]["headline_spread"]
    # The two separate runs, gated against each other, are now widened by the calibration.
    first, second = sorted(p for p in runs.iterdir() if load_run(p).get("baseline") is None)
    gated = subprocess.run(
        [*pairbench, "gate", "--baseline", str(first), str(second), "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gated.returncode in (0, 3), gated.stderr
    assert "intervals widened by the between-run spread" in (tmp_path / "gate.md").read_text()


def test_dependencies_are_compared_normalised(tmp_path: Path) -> None:
    one, two = tmp_path / "one.toml", tmp_path / "two.toml"
    one.write_text('[project]\ndependencies = ["httpx>=0.27", "FastAPI >= 0.110"]\n')
    two.write_text('[project]\ndependencies = ["fastapi>=0.110", "httpx >=0.27"]\n')
    assert (
        baseline.dependencies(one)
        == baseline.dependencies(two)
        == [
            "fastapi>=0.110",
            "httpx>=0.27",
        ]
    )
    two.write_text('[project]\ndependencies = ["fastapi>=0.111", "httpx>=0.27"]\n')
    assert baseline.dependencies(one) != baseline.dependencies(two)


def test_a_built_baseline_is_reused_and_imports_its_own_targets() -> None:
    first = baseline.build("HEAD")
    again = baseline.build("HEAD")
    assert first.commit == again.commit and "dependencies unchanged" in first.environment
    site = Path(first.interpreter.env["PYTHONPATH"])
    assert (site / "pairbench" / "targets" / "app.py").exists()
    assert not (site.parent / "src" / ".git").exists()  # an export, not a clone
    assert first.interpreter.cwd == site


def test_a_baseline_whose_data_differ_gets_a_database_of_its_own(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A baseline version that declares other sizes for the pair: sharing the new side's tables
    would measure it on data it does not define, so it is seeded into its own database."""
    from pairbench.harness import procs, runner

    changed = tmp_path / "changed-pairs"
    changed.mkdir()
    for source in FIXTURE_PAIRS.glob("*.py"):
        text = source.read_text()
        if source.name == f"{PAIR}.py":
            text = text.replace('"quick": {"parents": 1000,', '"quick": {"parents": 1200,')
        (changed / source.name).write_text(text)
    for key in (
        "PAIRBENCH_PG_DSN",
        "PAIRBENCH_REDIS_URL",
        "PAIRBENCH_PAIRS",
        "PAIRBENCH_SCENARIOS",
    ):
        monkeypatch.setenv(key, env[key])
    other = baseline.Baseline(
        "changed sizes",
        None,
        procs.Interpreter(env={"PAIRBENCH_PAIRS": str(changed)}),
        "the current environment (a test)",
    )
    options = runner.RunOptions(
        pairs=[PAIR],
        profile="quick",
        out=tmp_path / "out",
        seed=9,
        services=services.ServiceOptions.from_env(),
        baseline=other,
    )
    outcome = runner.execute(options)
    base = outcome.run["baseline"]
    assert base["dataset"].startswith("its own database on the same server (")
    assert base["dataset"].endswith("_baseline)")
    new_rows = outcome.run["pairs"][PAIR]["dataset"]["rows"]["fixture_parents"]
    base_rows = base["pairs"][PAIR]["dataset"]["rows"]["fixture_parents"]
    assert (new_rows, base_rows) == (1000, 1200)
    assert len(base["pairs"][PAIR]["trials"]) == len(outcome.run["pairs"][PAIR]["trials"]) == 9


WORKER_PAIRS = Path(__file__).resolve().parents[1] / "faults" / "worker_pairs"
WORKER_SCENARIO = """
pair = "fault_worker"
request = "/fault_worker/{variant}?ms={knob}"

[profiles.quick]
knob_values = [1]
users = 1
warmup_seconds = 0
trial_warmup_seconds = 0.05
round_seconds = 0.2
rounds = 2
"""


def test_a_pair_with_a_job_worker_gets_one_on_each_side(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The baseline's queue lives in its own Redis database: its own worker (its own code)
    serves it for the pair's turn, on a database of its own, and both workers end with it."""
    import psutil

    from pairbench.harness import procs, runner

    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "fault_worker.toml").write_text(WORKER_SCENARIO)
    pairs = os.pathsep.join([str(FIXTURE_PAIRS), str(WORKER_PAIRS)])
    for key in ("PAIRBENCH_PG_DSN", "PAIRBENCH_REDIS_URL"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("PAIRBENCH_PAIRS", pairs)
    monkeypatch.setenv("PAIRBENCH_SCENARIOS", str(scenarios))
    same = baseline.Baseline(
        "same code", None, procs.Interpreter(env={"PAIRBENCH_PAIRS": pairs}), "a test"
    )
    options = runner.RunOptions(
        pairs=["fault_worker"],
        profile="quick",
        out=tmp_path / "out",
        seed=9,
        services=services.ServiceOptions.from_env(),
        baseline=same,
    )
    outcome = runner.execute(options)
    new_worker = outcome.run["metadata"]["worker"]
    base = outcome.run["baseline"]
    assert base["worker"]["pid"] != new_worker["pid"]
    assert base["worker"]["log"].endswith("-baseline-worker.log")
    assert base["worker"]["argv"][-1] == "fault_worker"
    assert base["dataset"].startswith("its own database on the same server (")
    assert len(base["pairs"]["fault_worker"]["trials"]) == 2 * 2  # rounds x variants
    assert not any(psutil.pid_exists(w["pid"]) for w in (new_worker, base["worker"]))
