"""`pairbench run --live`: a real short run, its page read while the run is going, in a real
headless browser and over plain HTTP; the server ends with the run, Ctrl-C included.

The pair is a fixture pair (tests/fixtures/pairs/, PAIRBENCH_PAIRS) with a scenario of the test's
own, so adding or removing a built-in pair never breaks these tests.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from pairbench.cli.live import trial_fields
from pairbench.harness.rounds import TrialStep

from ..browser import screenshot

FIXTURE_PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "pairs"
PAIR = "fixture_rows"
VARIANTS = ("per_row", "join", "batched")
# Two knob values, three rounds of 1 s: 18 trials, long enough to watch, short enough to wait for.
SCENARIO = f"""
pair = "{PAIR}"
request = "/{PAIR}/{{variant}}?n={{knob}}"

[profiles.quick]
knob_values = [1, 40]
users = 1
round_seconds = 1
rounds = 3
"""
URL_WAIT_S = 60  # checks, servers and seeding before the URL is printed
POINT_WAIT_S = 40
RUN_WAIT_S = 120
BROWSER_BUDGET_S = 60
LIVE_LINE = re.compile(r"^live view: (http://127\.0\.0\.1:\d+/)$")


class LiveRun:
    """`pairbench run --live` in the background, its stderr read line by line."""

    def __init__(self, pairbench: list[str], env: dict[str, str], out: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [*pairbench, "run", PAIR, "--live", "--no-progress", "--out", str(out), *extra],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def url(self) -> str:
        """The page's URL, as the run prints it at its start."""
        deadline = time.monotonic() + URL_WAIT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if found := LIVE_LINE.match(line):
                return found.group(1)
        raise AssertionError(f"no live view URL printed; stderr so far: {self.seen}")

    def finish(self, timeout: float = RUN_WAIT_S) -> tuple[int, list[str]]:
        """Wait for the run to end: its exit code and every line it printed."""
        code = self.process.wait(timeout=timeout)
        while (line := self.lines.get(timeout=5)) is not None:
            self.seen.append(line)
        return code, self.seen

    def stop(self) -> None:
        """End the run by its PID if it is still going (a failed test), Ctrl-C first."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def live_env(tmp_path: Path, server_env: dict[str, str]) -> dict[str, str]:
    """The session's servers, the fixture pairs and a scenario folder of the test's own."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / f"{PAIR}.toml").write_text(SCENARIO)
    return {
        **server_env,
        "PAIRBENCH_PAIRS": str(FIXTURE_PAIRS),
        "PAIRBENCH_SCENARIOS": str(scenarios),
    }


@pytest.fixture
def live_run(pairbench: list[str], live_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    runs: list[LiveRun] = []

    def start(*extra: str) -> LiveRun:
        runs.append(LiveRun(pairbench, live_env, tmp_path / "runs", *extra))
        return runs[-1]

    yield start
    for run in runs:
        run.stop()


def _refused(url: str) -> bool:
    """Nothing listens at the URL's port any more."""
    parts = urlsplit(url)
    with socket.socket() as probe:
        return probe.connect_ex((str(parts.hostname), int(parts.port or 80))) != 0


def test_live_page_in_a_real_browser(browser: Any, live_run: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run = live_run()
    url = run.url()
    started = time.monotonic()
    browser.get(url)
    wait = WebDriverWait(browser, POINT_WAIT_S, poll_frequency=0.2)
    # The trial indicator names the trial running now, while the run is going.
    wait.until(lambda b: b.find_element(By.ID, "trial").text.startswith("trial "))
    now = browser.find_element(By.ID, "now").text
    assert PAIR in now and "round" in now and any(v in now for v in VARIANTS), now
    assert re.fullmatch(r"trial \d+ of 18", browser.find_element(By.ID, "trial").text)
    # A point of the pair's curve appears once a trial has landed in run.json.
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, f'[data-pair="{PAIR}"] circle.point'))
    point = browser.find_elements(By.CSS_SELECTOR, "circle.point")[0]
    assert point.get_attribute("data-variant") in VARIANTS
    assert point.get_attribute("data-knob") in ("1", "40")
    assert run.process.poll() is None, "the run ended before the page was checked"
    path = screenshot(browser, tmp_path / "live.png")
    assert path.stat().st_size > 10_000
    assert time.monotonic() - started < BROWSER_BUDGET_S
    # Ctrl-C ends the run, and the page's server with it.
    run.process.send_signal(signal.SIGINT)
    code, lines = run.finish()
    assert code == 130, lines
    assert _refused(url)


def test_live_state_while_a_run_completes(live_run: Any) -> None:
    run = live_run()
    url = run.url()
    states = []
    with httpx.Client(base_url=url, timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200 and "pairbench live" in page.text
        assert "<script src" not in page.text and "https://" not in page.text  # nothing fetched
        while run.process.poll() is None:
            try:
                states.append(client.get("/state.json").json())
            except httpx.TransportError:
                break  # the run ended between the check and the request
            time.sleep(0.5)
    code, lines = run.finish()
    assert code == 0, lines
    assert _refused(url)  # the server ended with the run
    running = [s for s in states if s["now"] and s["now"].get("pair") == PAIR and not s["ended"]]
    assert running, states[-1:]
    assert all(s["now"]["variant"] in VARIANTS for s in running)
    assert all(s["total"] == 18 for s in running)
    # Trials begun only grow, and the curve fills in: more points over time, all positive.
    begun = [s["started"] for s in running]
    assert begun == sorted(begun) and begun[-1] >= 12
    stored = [s for s in states if s["run"]["pairs"]]  # once run.json has the pair
    counts = [sum(len(p) for p in s["run"]["pairs"][0]["points"].values()) for s in stored]
    assert counts == sorted(counts) and counts[-1] == 2 * len(VARIANTS)
    assert all(p["ms"] > 0 for s in states[-1:] for p in s["run"]["pairs"][0]["points"]["join"])
    # The page saw the end: the run's final status before the server stopped.
    assert states[-1]["ended"] == "finished" and states[-1]["run"]["status"] == "complete"
    run_json = json.loads(next(Path(p) for p in _run_files(lines)).read_text())
    assert len(run_json["pairs"][PAIR]["trials"]) == 18


def _run_files(lines: list[str]) -> Iterator[str]:
    for line in lines:
        if found := re.search(r"results in (\S+)", line):
            yield f"{found.group(1)}/run.json"


def test_live_port_in_use_is_refused_before_anything_starts(
    pairbench: list[str], live_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*pairbench, "run", PAIR, "--live-port", str(port), "--out", str(tmp_path / "runs")],
            capture_output=True,
            text=True,
            timeout=120,
            env=live_env,
        )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert lines == [f"pairbench: error: --live-port {port}: port {port} is in use on 127.0.0.1"]
    assert not (tmp_path / "runs").exists()  # nothing ran


@pytest.mark.parametrize(
    ("trial", "fields"),
    [
        (
            TrialStep("pair_a", "n", 40, 2, 3, False, "join"),
            {"pair": "pair_a", "knob": "n", "value": "40", "round": 2, "rounds": 3},
        ),
        (
            TrialStep("pair_a", "depth", 1e6, 4, 8, True, "keyset", "base"),
            {
                "value": "1e+06",
                "round": 4,
                "rounds": 8,
                "adaptive": True,
                "variant": "keyset (base)",
                "text": "pair_a depth=1e+06 round 4 (<=8) keyset (base)",
            },
        ),
    ],
)
def test_the_trial_running_is_shown_from_the_runners_fields(
    trial: TrialStep, fields: dict[str, Any]
) -> None:
    shown = trial_fields(trial)
    assert {k: shown.get(k) for k in fields} == fields
