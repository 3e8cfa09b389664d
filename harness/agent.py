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
import bisect
import itertools
import json
import random
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
KEY_PLACEHOLDER = "{key}"
BYSTANDER_PREFIX = "bystander "


class Recorder:
    """Records request events into one histogram while a measurement window is open."""

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

    def stop(self) -> None:
        self.open = False

    def record(self, response_time: float, exception: BaseException | None) -> None:
        """One request; runs in the user's greenlet, so keep it tiny."""
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

    def result(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "clipped": self.clipped,
            "histogram": self.histogram.encode().decode("ascii"),
        }


class Recorders:
    """The measured variant's requests and, apart, the bystander's (a cheap endpoint run alongside)."""

    def __init__(self) -> None:
        self.target = Recorder()
        self.bystander = Recorder()

    def on_request(
        self, name: str, response_time: float, exception: BaseException | None, **_: Any
    ) -> None:
        """locust's request event listener."""
        recorder = self.bystander if name.startswith(BYSTANDER_PREFIX) else self.target
        recorder.record(response_time, exception)


class KeySampler:
    """Zipf-distributed keys 1..count (exponent 0 is uniform), seeded: the same run draws the same keys."""

    def __init__(self, count: int, exponent: float, seed: int) -> None:
        weights = [1.0 / (k**exponent) for k in range(1, count + 1)]
        self.cdf = list(itertools.accumulate(weights))
        self.rng = random.Random(seed)

    def __call__(self) -> int:
        return bisect.bisect_left(self.cdf, self.rng.random() * self.cdf[-1]) + 1


class TargetUser(FastHttpUser):
    """A closed-model user: sends the next request as soon as the previous reply arrives."""

    wait_time = constant(0)
    path = "/"  # set per trial by the agent
    keys: KeySampler | None = None  # fills {key} in the path, per request

    @task
    def hit(self) -> None:
        path = TargetUser.path
        if TargetUser.keys is not None:
            path = path.replace(KEY_PLACEHOLDER, str(TargetUser.keys()))
        # One name for all keys: locust's own stats stay small; latency goes to our histogram.
        self.client.get(path, name=TargetUser.path)


class BystanderUser(FastHttpUser):
    """Hits a cheap endpoint while the variant is loaded: its latency shows collateral damage."""

    wait_time = constant(0)
    path = "/"

    @task
    def hit(self) -> None:
        self.client.get(BystanderUser.path, name=BYSTANDER_PREFIX + BystanderUser.path)


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=METRICS_TIMEOUT_S) as response:
            return str(response.read().decode())
    except OSError:
        return None


def run_trial(env: Environment, recorders: Recorders, command: dict[str, Any]) -> dict[str, Any]:
    """Warm up, then measure one variant for `duration_s` with `users` closed-model users."""
    assert env.runner is not None
    TargetUser.path = command["path"]
    keys = command.get("keys")
    TargetUser.keys = KeySampler(keys["count"], keys["exponent"], keys["seed"]) if keys else None
    bystander = command.get("bystander")
    user_classes: list[type[FastHttpUser]] = [TargetUser]
    users = int(command["users"])
    if bystander:
        BystanderUser.path = bystander["path"]
        BystanderUser.fixed_count = int(bystander["users"])
        user_classes.append(BystanderUser)
        users += BystanderUser.fixed_count
    metrics_url = command.get("metrics_url")
    me = psutil.Process()
    env.runner.start(users, spawn_rate=SPAWN_RATE, user_classes=user_classes)  # type: ignore[arg-type]
    gevent.sleep(float(command.get("warmup_s", 0.0)))
    metrics_before = _fetch(metrics_url) if metrics_url else None
    cpu_before = me.cpu_times()
    recorders.target.start()
    recorders.bystander.start()
    started_at, t0 = time.time(), time.perf_counter()
    gevent.sleep(float(command["duration_s"]))
    recorders.target.stop()
    recorders.bystander.stop()
    elapsed = time.perf_counter() - t0
    cpu_after = me.cpu_times()
    metrics_after = _fetch(metrics_url) if metrics_url else None
    env.runner.stop()
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {
        "started_at": started_at,
        "elapsed_s": elapsed,
        **recorders.target.result(),
        "bystander": recorders.bystander.result() if bystander else None,
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
    recorders = Recorders()
    env = Environment(
        user_classes=[TargetUser, BystanderUser], host=args.host, events=locust.events
    )
    env.events.request.add_listener(recorders.on_request)
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
                reply = run_trial(env, recorders, command)
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
