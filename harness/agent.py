"""The load generator: locust in its own process, driven one trial at a time over stdin/stdout.

locust monkey-patches the process with gevent, so it never shares a process with the
orchestrator (asyncio, subprocess management) or with the target server. The orchestrator
starts `python -m pairbench.harness.agent --host URL` once per run and sends one JSON line per
trial; the agent answers with one JSON line holding the trial's raw HdrHistogram.

Latency is taken from locust's request event: the unrounded float `response_time` (ms), which
locust's own statistics round into buckets. It is recorded in microseconds with 3 significant
digits, so percentiles are exact to 0.1% and histograms merge exactly across rounds and workers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from typing import Any

import gevent

# locust must be imported first: it monkey-patches the standard library for gevent.
import locust
import psutil
from hdrh.histogram import HdrHistogram
from locust import FastHttpUser, constant, task
from locust.env import Environment

HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000  # one minute: any slower request is a failure anyway
HIST_SIGNIFICANT_DIGITS = 3
SPAWN_RATE = 10_000  # users per second: all of a trial's users start at once
METRICS_TIMEOUT_S = 5.0


class Recorder:
    """Records every request event into one histogram while a measurement window is open."""

    def __init__(self) -> None:
        self.open = False
        self.histogram = HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_SIGNIFICANT_DIGITS)
        self.requests = 0
        self.errors = 0
        self.clipped = 0

    def start(self) -> None:
        self.histogram.reset()
        self.requests = self.errors = self.clipped = 0
        self.open = True

    def on_request(self, response_time: float, exception: BaseException | None, **_: Any) -> None:
        """locust's request event listener; runs in the user's greenlet, so keep it tiny."""
        if not self.open:
            return
        self.requests += 1
        if exception is not None:
            self.errors += 1
            return
        value = int(response_time * 1000.0 + 0.5)
        if value > HIST_HIGHEST_US:
            self.clipped += 1
            value = HIST_HIGHEST_US
        self.histogram.record_value(max(HIST_LOWEST_US, value))


class TargetUser(FastHttpUser):
    """A closed-model user: sends the next request as soon as the previous reply arrives."""

    wait_time = constant(0)
    path = "/"  # set per trial by the agent

    @task
    def hit(self) -> None:
        self.client.get(TargetUser.path, name=TargetUser.path)


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=METRICS_TIMEOUT_S) as response:
            return str(response.read().decode())
    except OSError:
        return None


def run_trial(env: Environment, recorder: Recorder, command: dict[str, Any]) -> dict[str, Any]:
    """Warm up, then measure one variant for `duration_s` with `users` closed-model users."""
    assert env.runner is not None
    TargetUser.path = command["path"]
    metrics_url = command.get("metrics_url")
    me = psutil.Process()
    env.runner.start(int(command["users"]), spawn_rate=SPAWN_RATE)
    gevent.sleep(float(command.get("warmup_s", 0.0)))
    metrics_before = _fetch(metrics_url) if metrics_url else None
    cpu_before = me.cpu_times()
    recorder.start()
    started_at, t0 = time.time(), time.perf_counter()
    gevent.sleep(float(command["duration_s"]))
    recorder.open = False
    elapsed = time.perf_counter() - t0
    cpu_after = me.cpu_times()
    metrics_after = _fetch(metrics_url) if metrics_url else None
    env.runner.stop()
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {
        "started_at": started_at,
        "elapsed_s": elapsed,
        "requests": recorder.requests,
        "errors": recorder.errors,
        "clipped": recorder.clipped,
        "histogram": recorder.histogram.encode().decode("ascii"),
        "generator_cpu_percent": 100.0 * cpu_s / elapsed if elapsed > 0 else 0.0,
        "metrics_before": metrics_before,
        "metrics_after": metrics_after,
    }


def main(argv: list[str] | None = None) -> int:
    """Serve trials until stdin closes or a `quit` command arrives."""
    parser = argparse.ArgumentParser(prog="pairbench-agent")
    parser.add_argument(
        "--host", required=True, help="base URL of the target, e.g. http://127.0.0.1:8000"
    )
    args = parser.parse_args(argv)
    recorder = Recorder()
    env = Environment(user_classes=[TargetUser], host=args.host, events=locust.events)
    env.events.request.add_listener(recorder.on_request)
    env.create_local_runner()
    out = sys.stdout
    out.write(json.dumps({"ready": True, "locust": locust.__version__}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command.get("op") == "quit":
                break
            try:
                reply = run_trial(env, recorder, command)
            except Exception as e:  # report, keep serving: the orchestrator decides
                reply = {"error": f"{type(e).__name__}: {e}"}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        assert env.runner is not None
        env.runner.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
