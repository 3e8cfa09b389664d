"""The load generator: locust in its own process, driven one trial at a time over stdin/stdout.

locust monkey-patches the process with gevent, so it never shares a process with the
orchestrator (asyncio, subprocess management) or with the target server. The orchestrator
starts `python -m pairbench.harness.agent --host URL` once per run and sends one JSON line per
trial; the agent answers with one JSON line holding the trial's raw HdrHistograms.

Latency is taken from locust's request event: the unrounded float `response_time` (ms), which
locust's own statistics round into buckets. It is recorded in microseconds with 3 significant
digits, so percentiles are exact to 0.1% and histograms merge exactly across rounds and workers.

Two load models. Closed: N users, each sends as soon as its previous reply arrived. Open: a
fixed arrival rate over N connections, wrk2-style: every request has a planned send time,
carried in the request's locust context, and latency is measured from it.
"""

# ruff: noqa: E402
from gevent import monkey

monkey.patch_all()  # before anything imports socket or ssl (locust would do it, but later)

import argparse
import json
import logging
import sys
import time
import urllib.request
from typing import Any

import gevent
import locust
import psutil
from locust import FastHttpUser, constant, task
from locust.env import Environment

from pairbench.harness.recorder import KeySampler, OpenSchedule, Recorder

SPAWN_RATE = 10_000  # users per second: all of a trial's users start at once
METRICS_TIMEOUT_S = 5.0
KEY_PLACEHOLDER = "{key}"
BYSTANDER_PREFIX = "bystander "
OPEN_START_DELAY_S = 0.05  # the schedule starts after every connection's greenlet is running
DRAIN_TIMEOUT_S = 10.0  # after the window, wait this long for requests planned inside it


class Recorders:
    """The measured variant's requests and, apart, the bystander's (a cheap endpoint alongside)."""

    def __init__(self) -> None:
        self.target = Recorder()
        self.bystander = Recorder()

    def on_request(
        self,
        name: str,
        response_time: float,
        exception: BaseException | None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        """locust's request event listener: runs in the user's greenlet, so it stays tiny."""
        if name.startswith(BYSTANDER_PREFIX):
            self.bystander.record(response_time, exception)
        else:
            self.target.record(response_time, exception, (context or {}).get("planned"))


RECORDERS = Recorders()


class Trial:
    """What the users of the current trial request (set by `run_trial`, read by the users)."""

    path = "/"
    keys: KeySampler | None = None
    schedule: OpenSchedule | None = None

    @classmethod
    def next_path(cls) -> str:
        if cls.keys is None:
            return cls.path
        return cls.path.replace(KEY_PLACEHOLDER, str(cls.keys()))


class ClosedUser(FastHttpUser):
    """Closed model: sends the next request as soon as the previous reply arrives."""

    wait_time = constant(0)

    @task
    def hit(self) -> None:
        # One name for all keys keeps locust's own stats small; latency goes to our histogram.
        self.client.get(Trial.next_path(), name=Trial.path)


class OpenUser(FastHttpUser):
    """Open model: one connection of the schedule, sending at its planned times, late if busy."""

    wait_time = constant(0)

    def on_start(self) -> None:
        assert Trial.schedule is not None
        self.slot = next(Trial.schedule.slots)
        self.k = 0

    @task
    def hit(self) -> None:
        schedule = Trial.schedule
        assert schedule is not None
        planned = schedule.planned(self.slot, self.k)
        self.k += 1
        delay = planned - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        RECORDERS.target.on_send(planned)
        self.client.get(Trial.next_path(), name=Trial.path, context={"planned": planned})


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


def _drain(recorder: Recorder) -> None:
    """Wait for the requests planned inside the window: a stall at its end must count."""
    deadline = time.perf_counter() + DRAIN_TIMEOUT_S
    while recorder.in_flight > 0 and time.perf_counter() < deadline:
        gevent.sleep(0.005)


def run_trial(env: Environment, command: dict[str, Any]) -> dict[str, Any]:
    """Warm up, then measure one variant for `duration_s`."""
    assert env.runner is not None
    Trial.path = command["path"]
    keys = command.get("keys")
    Trial.keys = KeySampler(keys["count"], keys["exponent"], keys["seed"]) if keys else None
    open_model = command.get("model", "closed") == "open"
    users = int(command["users"])
    user_classes: list[type[FastHttpUser]] = [OpenUser if open_model else ClosedUser]
    if open_model:
        rate = float(command["rate"])
        Trial.schedule = OpenSchedule(rate, users, time.perf_counter() + OPEN_START_DELAY_S)
    bystander = command.get("bystander")
    if bystander:
        BystanderUser.path = bystander["path"]
        BystanderUser.fixed_count = int(bystander["users"])
        user_classes.append(BystanderUser)
        users += BystanderUser.fixed_count
    metrics_url = command.get("metrics_url")
    me = psutil.Process()
    env.runner.start(users, spawn_rate=SPAWN_RATE, user_classes=user_classes)  # type: ignore[arg-type]
    gevent.sleep(float(command.get("warmup_s", 0.0)) + (OPEN_START_DELAY_S if open_model else 0.0))
    metrics_before = _fetch(metrics_url) if metrics_url else None
    cpu_before = me.cpu_times()
    RECORDERS.target.start()
    RECORDERS.bystander.start()
    started_at, t0 = time.time(), time.perf_counter()
    gevent.sleep(float(command["duration_s"]))
    RECORDERS.target.stop()
    RECORDERS.bystander.stop()
    elapsed = time.perf_counter() - t0
    cpu_after = me.cpu_times()
    if open_model:
        _drain(RECORDERS.target)
    metrics_after = _fetch(metrics_url) if metrics_url else None
    env.runner.stop()
    cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    reply: dict[str, Any] = {
        "started_at": started_at,
        "elapsed_s": elapsed,
        **RECORDERS.target.result(),
        "bystander": RECORDERS.bystander.result() if bystander else None,
        "generator_cpu_percent": 100.0 * cpu_s / elapsed if elapsed > 0 else 0.0,
        "metrics_before": metrics_before,
        "metrics_after": metrics_after,
    }
    if open_model and Trial.schedule is not None and RECORDERS.target.window is not None:
        start, end = RECORDERS.target.window
        due = Trial.schedule.due(start, end)
        reply["open"] = {
            "target_rate": Trial.schedule.rate,
            "achieved_rate": RECORDERS.target.requests / elapsed if elapsed > 0 else 0.0,
            "due": due,
            "sent": RECORDERS.target.sent,
            "late": RECORDERS.target.late,
            "dropped": max(0, due - RECORDERS.target.sent),
        }
    return reply


def main(argv: list[str] | None = None) -> int:
    """Serve trials until stdin closes or a `quit` command arrives."""
    parser = argparse.ArgumentParser(prog="pairbench-agent")
    parser.add_argument("--host", required=True, help="base URL of the target")
    args = parser.parse_args(argv)
    # All of a trial's users start at once, on purpose: silence locust's ramp-up advice.
    logging.getLogger("locust.runners").addFilter(lambda r: "spawn rate" not in r.getMessage())
    env = Environment(
        user_classes=[ClosedUser, OpenUser, BystanderUser], host=args.host, events=locust.events
    )
    env.events.request.add_listener(RECORDERS.on_request)
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
                reply = run_trial(env, command)
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
