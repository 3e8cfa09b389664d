"""The users and recorders that generate load, in a gevent (locust) process: agent or worker.

Import this module only in a load-generator process: it monkey-patches the standard library.

Latency is taken from locust's request event: the unrounded float `response_time` (ms), which
locust's own statistics round into buckets. Closed model: N users, each sends as soon as its
previous reply arrived. Open model: a fixed arrival rate over N connections, wrk2-style: every
request has a planned send time, carried in the request's locust context, and latency is
measured from it.
"""

# ruff: noqa: E402
from gevent import monkey

monkey.patch_all()  # before anything imports socket or ssl

import time
from typing import Any, ClassVar

import gevent
import psutil
from locust import FastHttpUser, constant, task

from pairbench.harness.recorder import KeySampler, OpenSchedule, Recorder

KEY_PLACEHOLDER = "{key}"
BYSTANDER_PREFIX = "bystander "
OPEN_START_DELAY_S = 0.05  # the schedule starts after every connection's greenlet is running
DRAIN_TIMEOUT_S = 10.0  # after the window, wait this long for requests planned inside it


class Trial:
    """The current trial, as this process runs it: what to request, how, and its recorders."""

    path = "/"
    think_s = 0.0  # closed model: a user's pause between a reply and its next request
    keys: KeySampler | None = None
    schedule: OpenSchedule | None = None
    slots: ClassVar[list[int]] = []  # the open schedule's connection slots this process runs
    worker_index, worker_count = 0, 1
    bystander_path = "/"
    with_bystander = False
    target = Recorder()
    bystander = Recorder()
    cpu_before: Any = None
    cpu_seconds = 0.0
    window_s = 0.0
    opened_at = 0.0

    @classmethod
    def next_path(cls) -> str:
        if cls.keys is None:
            return cls.path
        return cls.path.replace(KEY_PLACEHOLDER, str(cls.keys()))

    @classmethod
    def next_slot(cls) -> int:
        # Slots interleave across workers (worker i runs i, i+W, i+2W, ...): even phases.
        slot = len(cls.slots) * cls.worker_count + cls.worker_index
        cls.slots.append(slot)
        return slot


def on_request(
    name: str,
    response_time: float,
    exception: BaseException | None,
    context: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """locust's request event listener: runs in the user's greenlet, so it stays tiny."""
    if name.startswith(BYSTANDER_PREFIX):
        Trial.bystander.record(response_time, exception)
    else:
        Trial.target.record(response_time, exception, (context or {}).get("planned"))


class ClosedUser(FastHttpUser):
    """Closed model: sends the next request when the previous reply arrived (plus think time)."""

    def wait_time(self) -> float:
        return Trial.think_s

    @task
    def hit(self) -> None:
        # One name for all keys keeps locust's own stats small; latency goes to our histogram.
        self.client.get(Trial.next_path(), name=Trial.path)


class OpenUser(FastHttpUser):
    """Open model: one connection of the schedule, sending at its planned times, late if busy."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.slot = Trial.next_slot()
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
        Trial.target.on_send(planned)
        self.client.get(Trial.next_path(), name=Trial.path, context={"planned": planned})


class BystanderUser(FastHttpUser):
    """Hits a cheap endpoint while the variant is loaded: its latency shows collateral damage."""

    wait_time = constant(0)

    @task
    def hit(self) -> None:
        self.client.get(Trial.bystander_path, name=BYSTANDER_PREFIX + Trial.bystander_path)


USER_CLASSES: list[type[FastHttpUser]] = [ClosedUser, OpenUser, BystanderUser]


def configure(
    command: dict[str, Any], worker_index: int = 0, worker_count: int = 1
) -> list[type[FastHttpUser]]:
    """Set up this process for a trial; returns the user classes to start."""
    Trial.path = command["path"]
    Trial.think_s = float(command.get("think_s") or 0.0)
    Trial.worker_index, Trial.worker_count = worker_index, worker_count
    keys = command.get("keys")
    Trial.keys = (
        KeySampler(keys["count"], keys["exponent"], keys["seed"] + worker_index) if keys else None
    )
    Trial.slots = []
    open_model = command.get("model", "closed") == "open"
    Trial.schedule = (
        OpenSchedule(
            float(command["rate"]), int(command["users"]), time.perf_counter() + OPEN_START_DELAY_S
        )
        if open_model
        else None
    )
    classes: list[type[FastHttpUser]] = [OpenUser if open_model else ClosedUser]
    bystander = command.get("bystander")
    Trial.with_bystander = bool(bystander)
    if bystander:
        Trial.bystander_path = bystander["path"]
        BystanderUser.fixed_count = int(bystander["users"])
        classes.append(BystanderUser)
    return classes


def open_window() -> None:
    """Start measuring."""
    Trial.cpu_before = psutil.Process().cpu_times()
    Trial.opened_at = time.perf_counter()
    Trial.target.start()
    Trial.bystander.start()


def close_window() -> None:
    """Stop measuring; in the open model, wait for the requests planned inside the window."""
    Trial.target.stop()
    Trial.bystander.stop()
    Trial.window_s = time.perf_counter() - Trial.opened_at
    after = psutil.Process().cpu_times()
    before = Trial.cpu_before
    Trial.cpu_seconds = (after.user - before.user) + (after.system - before.system)
    deadline = time.perf_counter() + DRAIN_TIMEOUT_S
    while (
        Trial.schedule is not None and Trial.target.in_flight > 0 and time.perf_counter() < deadline
    ):
        gevent.sleep(0.005)


def collect() -> dict[str, Any]:
    """This process's share of the trial: encoded histograms, counts, CPU."""
    result: dict[str, Any] = {
        **Trial.target.result(),
        "bystander": Trial.bystander.result() if Trial.with_bystander else None,
        "cpu_percent": 100.0 * Trial.cpu_seconds / Trial.window_s if Trial.window_s > 0 else 0.0,
        "window_s": Trial.window_s,
    }
    if Trial.schedule is not None and Trial.target.window is not None:
        start, end = Trial.target.window
        result["open"] = {
            "rate": Trial.schedule.rate,
            "due": Trial.schedule.due(start, end, Trial.slots),
            "sent": Trial.target.sent,
            "late": Trial.target.late,
        }
    return result
