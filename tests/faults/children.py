"""A `pairbench run` with a component of its own (the downstream service, the job worker, the
process group), run until its first trial so a test can fault it: shared by
tests/faults/test_downstream.py, test_worker.py and test_group.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from pairbench.harness import services

RUN_TIMEOUT_S = 120.0
INTERRUPTED = r"pairbench: error: interrupted$"  # stderr's last line after SIGINT or SIGTERM
# A fault: called with the run and what the test found of its component.
Fault = Callable[[subprocess.Popen[str], Any], None]


def endless_scenario(pair: str, tables: str = "") -> str:
    """`pair`'s scenario for a fault test: one user in half-second rounds until a fault ends
    the run (`tables`: more TOML before the profile, such as a [downstream] table)."""
    return f"""
pair = "{pair}"
request = "/{pair}/{{variant}}?ms={{knob}}"
{tables}
[profiles.quick]
knob_values = [1]
users = 1
warmup_seconds = 0
trial_warmup_seconds = 0.05
round_seconds = 0.5
rounds = 1000
think_ms = 50
"""


def signal_pairbench(sig: int) -> Fault:
    """The fault of a signal to pairbench itself."""
    return lambda run, found: os.kill(run.pid, sig)


# Ctrl-C and SIGTERM of pairbench: exit 130, the component ended with the run.
INTERRUPTS: dict[str, tuple[Fault, int, str]] = {
    "SIGINT pairbench": (signal_pairbench(signal.SIGINT), 130, INTERRUPTED),
    "SIGTERM pairbench": (signal_pairbench(signal.SIGTERM), 130, INTERRUPTED),
}


@contextlib.contextmanager
def state_folder(prefix: str) -> Iterator[Path]:
    """A state folder of the run's own (0711: as root, the postgres user must enter it)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def trials(out: Path, pair: str) -> int:
    """The trials run.json holds for `pair` so far (0 before it exists or names the pair)."""
    for path in out.glob("*/run.json"):
        with contextlib.suppress(ValueError, KeyError):
            return len(json.loads(path.read_text())["pairs"][pair]["trials"])
    return 0


def child(pid: int, marker: str) -> psutil.Process | None:
    """The process in `pid`'s tree whose command line contains `marker`."""
    with contextlib.suppress(psutil.NoSuchProcess):
        for found in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if marker in " ".join(found.cmdline()):
                    return found
    return None


def start_run(
    pair: str, scenario: str, pairs: Path, servers: services.Endpoints, state: Path, tmp: Path
) -> tuple[subprocess.Popen[str], Path]:
    """`pairbench run PAIR` on the session's servers, its scenario written to `tmp`; returns
    the process and its results folder once the first trial is in run.json."""
    scenarios = tmp / "scenarios"
    scenarios.mkdir()
    (scenarios / f"{pair}.toml").write_text(scenario)
    env = {
        **os.environ,
        "PAIRBENCH_PG_DSN": servers.pg_dsn,
        "PAIRBENCH_REDIS_URL": servers.redis_url,
        "PAIRBENCH_PAIRS": str(pairs),
        "PAIRBENCH_SCENARIOS": str(scenarios),
        "PAIRBENCH_STATE_DIR": str(state),
    }
    out = tmp / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "pairbench", "run", pair, "--out", str(out), "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while trials(out, pair) == 0:
            assert run.poll() is None, run.stderr.read() if run.stderr else ""
            assert time.monotonic() < deadline, "no trial in time"
            time.sleep(0.05)
    except BaseException:
        end(run)
        raise
    return run, out


def end(run: subprocess.Popen[str]) -> None:
    """Kill the run if a failed assertion left it running."""
    if run.poll() is None:
        run.kill()
        run.communicate()
