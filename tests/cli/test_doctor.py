"""`pairbench doctor`, run here for real: every line, the verdict, the exit code, and that every
process it started is gone afterwards (Ctrl-C included).

Each run gets a state folder of its own: doctor starts the embedded PostgreSQL and Valkey
there, never beside the session's servers. The failing run uses a fixture pair (PAIRBENCH_PAIRS)
whose scenario states a wrong mechanism rule, so its smoke measurement fails verification for
real.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

CHECKS = ["python", "cores", "memory", "ports", "servers", "smoke"]
LINE = re.compile(r"^(ok|warn|FAIL) +(\w+) +(\S.*)$")
FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
PAIR = "fixture_rows"
# One statement per request for the 1+n variant: wrong at any n above 0, so verification fails.
WRONG_RULE = f"""
pair = "{PAIR}"
request = "/{PAIR}/{{variant}}?n={{knob}}"

[mechanism.queries]
per_row = {{ base = 1 }}

[profiles.quick]
knob_values = [1, 40]
users = 1
round_seconds = 1
rounds = 1
"""
TIMEOUT_S = 300


@pytest.fixture
def state_env() -> Iterator[dict[str, str]]:
    """The environment with a fresh state folder of the test's own, removed afterwards."""
    state = Path(tempfile.mkdtemp(prefix="pairbench-doctor-test-"))
    state.chmod(0o711)  # as root, the unprivileged postgres user must be able to enter it
    env = {**os.environ, "PAIRBENCH_STATE_DIR": str(state)}
    for name in ("PAIRBENCH_PG_DSN", "PAIRBENCH_REDIS_URL", "PAIRBENCH_PAIRS"):
        env.pop(name, None)
    yield env
    subprocess.run(["rm", "-rf", str(state)], check=False)


def _doctor(
    pairbench: list[str], env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pairbench, "doctor", *args], capture_output=True, text=True, env=env, timeout=TIMEOUT_S
    )


def _checks(stdout: str) -> dict[str, tuple[str, str]]:
    """check -> (status, the rest of its line); every line but the verdict must be a check."""
    lines = stdout.strip().splitlines()
    assert lines[-1].startswith("verdict: "), stdout
    found = {}
    for line in lines[:-1]:
        match = LINE.match(line)
        assert match, f"not a check line: {line!r}"
        found[match.group(2)] = (match.group(1), match.group(3))
    assert list(found) == CHECKS, stdout
    return found


def _server_pids(text: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"pid (\d+)", text)]


def _gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


def test_doctor_passes_here(pairbench: list[str], state_env: dict[str, str]) -> None:
    done = _doctor(pairbench, state_env)
    checks = _checks(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert all(status in ("ok", "warn") for status, _ in checks.values())
    assert done.stdout.strip().splitlines()[-1].startswith("verdict: ready (")
    python = ".".join(map(str, sys.version_info[:3]))
    assert checks["python"] == ("ok", f"{python} (3.11 or newer needed)")
    cores = len(os.sched_getaffinity(0))
    assert checks["cores"][1].startswith(f"{cores} usable")
    assert checks["cores"][0] == ("ok" if cores >= 4 else "warn")
    assert re.match(r"[\d.]+ GiB available of [\d.]+ GiB", checks["memory"][1])
    assert "127.0.0.1 hands out free ports" in checks["ports"][1]
    # The servers were started in the test's state folder, and are stopped again.
    servers = checks["servers"][1]
    assert "PostgreSQL (embedded" in servers and "Valkey (embedded" in servers, servers
    assert "started in" in servers
    pids = _server_pids(servers)
    assert len(pids) == 2
    assert _gone(pids)
    smoke = checks["smoke"][1]
    match = re.search(r"verified, ([\d,]+) requests in ([\d.]+) s under load \((\d+) trials", smoke)
    assert match, smoke
    assert int(match.group(1).replace(",", "")) > 0
    assert 1.0 <= float(match.group(2)) <= 6.0  # about two seconds, however busy the machine
    assert "p50 " in smoke


def test_a_failed_check_is_a_fail_line_and_exit_1(
    pairbench: list[str], state_env: dict[str, str], tmp_path: Path
) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / f"{PAIR}.toml").write_text(WRONG_RULE)
    env = {
        **state_env,
        "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS),
        "PAIRBENCH_SCENARIOS": str(scenarios),
    }
    done = _doctor(pairbench, env, "--pair", PAIR)
    checks = _checks(done.stdout)
    assert done.returncode == 1, done.stdout + done.stderr
    assert checks["servers"][0] == "ok"
    assert checks["smoke"][0] == "FAIL"
    assert checks["smoke"][1].startswith(f"{PAIR} at n=40: verification failed (")
    assert "queries" in checks["smoke"][1]
    assert (
        done.stdout.strip()
        .splitlines()[-1]
        .startswith("verdict: NOT ready, 1 check failed (smoke)")
    )
    assert _gone(_server_pids(checks["servers"][1]))


def test_an_unknown_pair_is_one_line_and_exit_2(
    pairbench: list[str], state_env: dict[str, str]
) -> None:
    done = _doctor(pairbench, state_env, "--pair", "no_such_pair")
    assert done.returncode == 2
    assert done.stdout == ""  # refused before any check ran or anything started
    assert len(done.stderr.strip().splitlines()) == 1
    assert "--pair 'no_such_pair'" in done.stderr and "Traceback" not in done.stderr


def test_ctrl_c_stops_everything_doctor_started(
    pairbench: list[str], state_env: dict[str, str]
) -> None:
    doctor = subprocess.Popen(
        [*pairbench, "doctor"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=state_env,
    )
    try:
        assert doctor.stdout is not None
        servers = ""
        for line in doctor.stdout:
            if line.split()[:2] == ["ok", "servers"]:
                servers = line
                break
        assert servers, "doctor printed no servers line"
        # Into the smoke run: the target and the load generator are starting or running.
        time.sleep(3)
        started = [p.pid for p in psutil.Process(doctor.pid).children(recursive=True)]
        started = sorted({*started, *_server_pids(servers)})
        assert len(started) > 2, "nothing but the two servers was running to be stopped"
        doctor.send_signal(signal.SIGINT)
        _, stderr = doctor.communicate(timeout=60)
        assert doctor.returncode == 130, stderr
        assert "interrupted" in stderr
        deadline = time.monotonic() + 15
        while not _gone(started) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(started), [p for p in started if psutil.pid_exists(p)]
    finally:
        if doctor.poll() is None:
            doctor.kill()
            doctor.wait()
