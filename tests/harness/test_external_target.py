"""`pairbench run --target URL`: a targets app started apart, with `pairbench serve`, measured.

The target is a real `pairbench serve` process serving the fixture pairs (tests/fixtures/pairs/,
through PAIRBENCH_PAIRS) on the session's PostgreSQL and Redis; the run starts no server of its
own. A target that does not answer, or serves other pairs, stops the run in one line with exit 3
before any results folder exists (docs/architecture.md, "A target elsewhere").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pairbench import errors, runmodel
from pairbench.errors import InfrastructureError
from pairbench.harness import catalogue, external, procs, server, services

FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
RUN_FORMAT = Path(__file__).resolve().parents[2] / "docs" / "run-format.md"
PAIR = "fixture_rows"
SERVE_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0

SCENARIO = """
pair = "fixture_rows"
request = "/fixture_rows/{variant}?n={knob}"

[mechanism.queries]
per_row = { base = 1, per_knob = 1 }
join = { base = 1 }
batched = { base = 2 }

[profiles.quick]
knob_values = [10]
users = 2
warmup_seconds = 0.1
trial_warmup_seconds = 0.1
round_seconds = 0.2
max_rounds = 4
"""


def _env(servers: services.Endpoints, scenarios: Path, with_dsn: bool) -> dict[str, str]:
    env = {
        **os.environ,
        "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS),
        "PAIRBENCH_SCENARIOS": str(scenarios),
        "PAIRBENCH_REDIS_URL": servers.redis_url,
    }
    if with_dsn:
        env["PAIRBENCH_PG_DSN"] = servers.pg_dsn
    return env


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / f"{PAIR}.toml").write_text(SCENARIO)
    return folder


@pytest.fixture
def served(
    pairbench: list[str], servers: services.Endpoints, scenarios: Path, tmp_path: Path
) -> Iterator[str]:
    """`pairbench serve` with the fixture pairs, started apart as a user would: its URL."""
    port = procs.free_port()
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [*pairbench, "serve", "--port", str(port), "--profile", "test"],
        env=_env(servers, scenarios, with_dsn=True),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while True:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "pairbench serve did not answer"
            time.sleep(0.2)
        yield url
        assert serve.poll() is None, "the run stopped a target it did not start"
    finally:
        serve.send_signal(signal.SIGINT)  # serve's Ctrl-C: it stops what it started
        try:
            serve.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        log.close()


def _run(
    pairbench: list[str], env: dict[str, str], out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pairbench, "run", PAIR, "--rounds", "2", "--out", str(out), "--no-progress", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_run_measures_a_target_served_apart(
    pairbench: list[str],
    servers: services.Endpoints,
    scenarios: Path,
    served: str,
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    # The run is given the target's database: it seeds it for its profile before verifying.
    result = _run(pairbench, _env(servers, scenarios, with_dsn=True), out, "--target", served)
    assert result.returncode == 0, result.stderr
    (run_dir,) = out.iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    local = catalogue.describe({**os.environ, "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS)})
    target = run["metadata"]["target"]
    assert target["kind"] == "targets" and target["url"] == served
    assert target["host"] == "127.0.0.1" and target["version"] == local.version
    assert target["seeding"] == "by this run, into PAIRBENCH_PG_DSN"
    assert run["metadata"]["server"]["url"] == served
    assert "postgres" not in run["metadata"]  # no server of the run's own was started
    pair = run["pairs"][PAIR]
    assert pair["verification"]["passed"] and pair["dataset"]["rows"]["fixture_parents"] > 0
    trials = pair["trials"]
    assert len(trials) == 1 * 2 * 3  # knob values x rounds x variants
    # The counters came from the target's own /metrics, scraped around every trial.
    assert all(t["counters"]["queries"] > 0 for t in trials)
    assert f"target: {served} (pairbench {local.version}" in result.stderr
    assert runmodel.undocumented_paths(run, RUN_FORMAT.read_text(encoding="utf-8")) == []


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unreachable_target_exits_3_in_one_line(
    pairbench: list[str], servers: services.Endpoints, scenarios: Path, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{procs.free_port()}"  # nothing listens there
    out = tmp_path / "out"
    result = _run(pairbench, _env(servers, scenarios, with_dsn=False), out, "--target", url)
    assert result.returncode == errors.EXIT_UNTRUSTED
    assert f"--target {url}: unreachable" in _one_line(result)
    assert not out.exists()  # refused before a results folder was made


def test_target_serving_other_pairs_exits_3(
    pairbench: list[str],
    servers: services.Endpoints,
    scenarios: Path,
    target_server: server.TargetServer,  # the built-in pairs only: no fixture pair
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    result = _run(
        pairbench,
        _env(servers, scenarios, with_dsn=False),
        out,
        "--target",
        target_server.url,
    )
    assert result.returncode == errors.EXIT_UNTRUSTED
    assert f"serves no pair '{PAIR}'" in _one_line(result)
    assert not out.exists()


def test_a_linked_scenario_is_refused_against_a_target(scenarios: Path) -> None:
    from pairbench.harness import scenario

    path = scenarios / f"{PAIR}.toml"
    path.write_text(SCENARIO + "\n[link.db]\nrtt_ms = 1.0\n")
    spec = scenario.load_scenario(path)
    with pytest.raises(errors.UsageError, match=r"\[link\] needs a target this run starts"):
        external.check("http://127.0.0.1:1", [spec], {spec.key: spec.load("quick")})


def _document(version: str, variants: list[str]) -> catalogue.Catalogue:
    doc = {
        "pairbench": version,
        "pairs": [{"name": PAIR, "variants": [{"name": v} for v in variants]}],
    }
    return catalogue.Catalogue.from_document(doc, "test")


def test_another_version_or_other_variants_are_refused(scenarios: Path) -> None:
    from pairbench.harness import scenario

    (spec,) = [scenario.load_scenario(scenarios / f"{PAIR}.toml")]
    local = _document("1.0", ["per_row", "join"])
    external.check_served("http://h:1", [spec], local, _document("1.0", ["per_row", "join"]))
    with pytest.raises(InfrastructureError, match=r"serves pairbench 0\.9, this checkout is 1\.0"):
        external.check_served("http://h:1", [spec], local, _document("0.9", ["per_row", "join"]))
    with pytest.raises(InfrastructureError, match=r"has variants \['per_row'\]"):
        external.check_served("http://h:1", [spec], local, _document("1.0", ["per_row"]))


@pytest.mark.parametrize(
    "url", ["ftp://h:1", "http://h:1/api", "127.0.0.1:8000", "http://h:99999", "http://"]
)
def test_a_malformed_target_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(errors.UsageError, match="--target"):
        external.base_url(url)
