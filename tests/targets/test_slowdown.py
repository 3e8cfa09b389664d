"""The injected slowdown (targets/slowdown.py): its format, the loopback rule, and the mechanism
on a real uvicorn (docs/architecture.md, "Injected slowdown (testing the gate)").

The slowed variant is a fixture pair's (tests/fixtures/pairs/fixture_busy.py, loaded through
PAIRBENCH_PAIRS): `awaiting` sleeps `ms` milliseconds, so its handler time is known.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pairbench import runmodel
from pairbench.errors import EXIT_USAGE, InfrastructureError
from pairbench.harness import server, services
from pairbench.targets.slowdown import SlowdownError, is_loopback, parse

FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
RUN_FORMAT = Path(__file__).resolve().parents[2] / "docs" / "run-format.md"
PAIRS_ENV = {"PAIRBENCH_PAIRS": str(FIXTURE_PAIRS)}
SLOWED = "fixture_busy/awaiting"
FRACTION = 5.0  # 500%: the injected delay dwarfs the handler, so skipping it would show
HANDLER_MS = 20
VARIANTS = {"fixture_busy": ["blocking", "awaiting"], "harness_gzip": ["plain", "gzipped"]}
COUNTER = "pairbench_slowdown_seconds"


# -- the format -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("fixture_busy/awaiting=20%", {SLOWED: 0.2}),
        ("fixture_busy/awaiting=20", {SLOWED: 0.2}),
        (" fixture_busy/awaiting = 12.5 % ", {SLOWED: 0.125}),
        ("fixture_busy/awaiting=1000%", {SLOWED: 10.0}),
        (
            "fixture_busy/awaiting=10%,harness_gzip/plain=20%",
            {SLOWED: 0.1, "harness_gzip/plain": 0.2},
        ),
        ("", {}),
    ],
)
def test_a_spec_gives_fractions(spec: str, expected: dict[str, float]) -> None:
    assert parse(spec, VARIANTS) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fixture_busy/awaiting=0", "'fixture_busy/awaiting=0': PCT must be > 0 and <= 1000"),
        ("fixture_busy/awaiting=-5%", "PCT must be > 0 and <= 1000 (percent), not -5"),
        ("fixture_busy/awaiting=2000%", "PCT must be > 0 and <= 1000 (percent), not 2000"),
        ("fixture_busy/awaiting=nan", "PCT must be > 0"),
        ("fixture_busy/awaiting=fast", "PCT 'fast' is not a number"),
        ("fixture_busy/awaiting20%", "'fixture_busy/awaiting20%': expected PAIR/VARIANT=PCT"),
        ("fixture_busy=20%", "expected PAIR/VARIANT before '='"),
        ("nope/awaiting=20%", "'nope/awaiting=20%': unknown pair 'nope' (known: fixture_busy"),
        ("fixture_busy/nope=20%", "pair 'fixture_busy' has no variant 'nope'"),
        ("fixture_busy/awaiting=20%,", "'': empty entry"),
        ("fixture_busy/awaiting=20%,fixture_busy/awaiting=10%", "slowed twice"),
    ],
)
def test_a_bad_spec_names_its_entry(spec: str, message: str) -> None:
    with pytest.raises(SlowdownError) as raised:
        parse(spec, VARIANTS)
    assert str(raised.value).startswith("PAIRBENCH_SLOWDOWN: ")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# -- the mechanism on a real server ---------------------------------------------------------


@pytest.fixture(scope="module")
def slowed_target(
    servers: services.Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[server.TargetServer]:
    """A target serving the fixture pairs with fixture_busy/awaiting slowed by 500%."""
    log = tmp_path_factory.mktemp("slowed-target") / "server.log"
    running = server.start(
        servers.pg_dsn,
        servers.redis_url,
        log,
        extra_env=PAIRS_ENV,
        slowdown={SLOWED: FRACTION},
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(slowed_target: server.TargetServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=slowed_target.url, timeout=30) as c:
        yield c


def _injected_total(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == f"{COUNTER}_total"
        and sample.labels == {"pair": "fixture_busy", "variant": "awaiting"}
    )


def test_the_slowed_variant_waits_a_fraction_of_its_own_time(client: httpx.Client) -> None:
    before = _injected_total(client)
    injected: list[float] = []
    for _ in range(3):
        start = time.perf_counter()
        response = client.get("/fixture_busy/awaiting", params={"ms": HANDLER_MS})
        took = time.perf_counter() - start
        assert response.status_code == 200
        assert response.json() == {"ms": HANDLER_MS}
        seconds = float(response.headers["x-pairbench-slowdown"])
        assert seconds > 0
        # The handler's time plus the wait: at least the wait, and the wait is FRACTION times
        # a part of what the client saw.
        assert took >= seconds
        assert seconds <= FRACTION * took
        injected.append(seconds)
    # The counter grew by what the headers said (each rounded to microseconds).
    assert _injected_total(client) - before == pytest.approx(sum(injected), abs=1e-5)


def test_other_variants_and_pairs_are_not_slowed(client: httpx.Client) -> None:
    before = _injected_total(client)
    for path, params in [
        ("/fixture_busy/blocking", {"ms": 1}),
        ("/harness_gzip/plain", {"n": 1}),
        ("/healthz", {}),
    ]:
        response = client.get(path, params=params)
        assert response.status_code == 200, path
        assert "x-pairbench-slowdown" not in response.headers, path
    assert _injected_total(client) == before


def test_the_slowdown_is_described(
    client: httpx.Client, slowed_target: server.TargetServer
) -> None:
    assert client.get("/pairs").json()["slowdown"] == {SLOWED: FRACTION}
    assert slowed_target.describe()["slowdown"] == {SLOWED: FRACTION}
    assert "slowdown_seconds" in client.get("/pairs").json()["counters"]


def test_the_run_metadata_keeps_it_in_documented_keys(
    slowed_target: server.TargetServer,
) -> None:
    doc = {"metadata": {"server": slowed_target.describe()}}
    assert "metadata.server.slowdown.*" in runmodel.key_paths(doc)
    assert runmodel.undocumented_paths(doc, RUN_FORMAT.read_text()) == []


def test_an_inherited_slowdown_is_recorded_too(servers: services.Endpoints, tmp_path: Path) -> None:
    """`pairbench run` with PAIRBENCH_SLOWDOWN exported: the server inherits it."""
    running = server.start(
        servers.pg_dsn,
        servers.redis_url,
        tmp_path / "server.log",
        extra_env={**PAIRS_ENV, "PAIRBENCH_SLOWDOWN": "fixture_busy/blocking=10%"},
    )
    try:
        assert running.describe()["slowdown"] == {"fixture_busy/blocking": 0.1}
        response = httpx.get(running.url + "/fixture_busy/blocking", params={"ms": 1})
        assert float(response.headers["x-pairbench-slowdown"]) > 0
    finally:
        running.stop()


def test_describe_prints_the_slowdown_from_the_environment() -> None:
    env = {**os.environ, **PAIRS_ENV, "PAIRBENCH_SLOWDOWN": f"{SLOWED}=20%"}
    done = subprocess.run(
        [sys.executable, "-m", "pairbench.targets", "describe"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["slowdown"] == {SLOWED: 0.2}


def test_an_unslowed_target_describes_no_slowdown(target: httpx.Client) -> None:
    assert "slowdown" not in target.get("/pairs").json()


# -- refusals -------------------------------------------------------------------------------


def test_a_bad_spec_stops_the_server_starting(servers: services.Endpoints, tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError) as raised:
        server.start(
            servers.pg_dsn,
            servers.redis_url,
            tmp_path / "server.log",
            extra_env=PAIRS_ENV,
            slowdown={"fixture_busy/nope": 0.2},
        )
    assert "pair 'fixture_busy' has no variant 'nope'" in str(raised.value)


def test_a_non_loopback_host_stops_the_server_starting(
    servers: services.Endpoints, tmp_path: Path
) -> None:
    with pytest.raises(InfrastructureError) as raised:
        server.start(
            servers.pg_dsn,
            servers.redis_url,
            tmp_path / "server.log",
            host="0.0.0.0",
            extra_env=PAIRS_ENV,
            slowdown={SLOWED: 0.2},
        )
    assert "the server binds to 0.0.0.0" in str(raised.value)
    assert "loopback only" in str(raised.value)


def test_uvicorn_exits_2_with_one_line(servers: services.Endpoints) -> None:
    env = {
        **os.environ,
        **PAIRS_ENV,
        "PAIRBENCH_PG_DSN": servers.pg_dsn,
        "PAIRBENCH_REDIS_URL": servers.redis_url,
        "PAIRBENCH_SLOWDOWN": f"{SLOWED}=2000%",
        "PAIRBENCH_BIND_HOST": "127.0.0.1",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "pairbench.targets.app:create_app",
            "--factory",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "pairbench-targets: error: PAIRBENCH_SLOWDOWN: 'fixture_busy/awaiting=2000%':"
        " PCT must be > 0 and <= 1000 (percent), not 2000"
    )


def _serve(pairbench: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pairbench, "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **PAIRS_ENV},
    )


def test_serve_refuses_a_slowdown_on_a_public_host(pairbench: list[str]) -> None:
    done = _serve(pairbench, "--slow-variant", "x/y=20%", "--host", "0.0.0.0")
    assert done.returncode == EXIT_USAGE, done
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "pairbench: error: --slow-variant needs a loopback --host (127.0.0.1, ::1, localhost),"
        " not 0.0.0.0: a slowed target is for testing the gate"
    ]


def test_serve_refuses_an_unknown_variant(pairbench: list[str]) -> None:
    done = _serve(pairbench, "--slow-variant", "fixture_busy/nope=20%")
    assert done.returncode == EXIT_USAGE, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("pairbench: error: --slow-variant: 'fixture_busy/nope=20%':")
    assert "has no variant 'nope'" in lines[0]


# -- a server that serves some pairs ----------------------------------------------------------


def test_a_server_given_pairs_serves_them_alone_and_ignores_a_slowdown_of_another(
    servers: services.Endpoints, tmp_path: Path
) -> None:
    """A run's target serves the run's pairs (server.start(pairs=...)): the others' routes and
    counters are absent, and a slowdown naming one of them is valid but slows nothing here."""
    running = server.start(
        servers.pg_dsn,
        servers.redis_url,
        tmp_path / "server.log",
        extra_env=PAIRS_ENV,
        slowdown={SLOWED: 0.2},
        pairs=["harness_gzip"],
    )
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            described = client.get("/pairs").json()
            assert [p["name"] for p in described["pairs"]] == ["harness_gzip"]
            assert "slowdown" not in described
            assert client.get("/fixture_busy/awaiting").status_code == 404
            assert client.get("/harness_gzip/plain?n=3").status_code == 200
    finally:
        running.stop()
