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
from locust.contrib.fasthttp import LocustBadStatusCode

from pairbench.harness.recorder import KeySampler, OpenSchedule, Recorder

KEY_PLACEHOLDER = "{key}"
QUOTED_KEY = '"{key}"'
BYSTANDER_PREFIX = "bystander "
UNMEASURED_PREFIX = "unmeasured "
OPEN_START_DELAY_S = 0.05  # the schedule starts after every connection's greenlet is running
DRAIN_TIMEOUT_S = 10.0  # after the window, wait this long for requests planned inside it
STATUS_ERROR = RuntimeError("unexpected status")  # one instance: no allocation per failure


class Step:
    """One concrete request of a variant's sequence, precomputed once per trial."""

    __slots__ = ("body", "carry", "headers", "keyed", "measure", "method", "name", "once", "path")

    def __init__(self, index: int, step: dict[str, Any]) -> None:
        self.method: str = step["method"]
        self.path: str = step["path"]
        self.headers: dict[str, str] = dict(step["headers"])
        body = step.get("body")
        self.body: str | None = body
        self.carry: list[tuple[str, str]] = list(step.get("carry", {}).items())
        self.once: bool = bool(step.get("once"))
        self.measure: bool = bool(step.get("measure", True))
        # One name per step for every key keeps locust's own stats small; it also finds the
        # step's expected status in the request listener.
        prefix = "" if self.measure else UNMEASURED_PREFIX
        self.name = f"{prefix}{index} {self.method} {self.path}"
        self.keyed = any(
            KEY_PLACEHOLDER in text for text in (self.path, *self.headers.values(), body or "")
        )

    def args(self, key: str | None) -> tuple[str, dict[str, str], str | None]:
        """Path, headers and body, with `{key}` filled when this step uses it."""
        if key is None or not self.keyed:
            return self.path, self.headers, self.body
        body = self.body
        if body is not None:
            body = body.replace(QUOTED_KEY, key).replace(KEY_PLACEHOLDER, key)
        headers = {k: v.replace(KEY_PLACEHOLDER, key) for k, v in self.headers.items()}
        return self.path.replace(KEY_PLACEHOLDER, key), headers, body


class Trial:
    """The current trial, as this process runs it: what to request, how, and its recorders."""

    steps: ClassVar[list[Step]] = []
    simple = True  # one step, no carry, no key: the cheapest path
    # The open model plans one send per iteration: only this step (the first measured one)
    # carries the planned time; later measured steps are timed from their own send.
    planned_at = 0
    # step name -> the statuses it accepts (one, or a scenario's list such as [200, 429])
    expected: ClassVar[dict[str, frozenset[int]]] = {}
    # Replies counted per status: when a step accepts several (the 429 share of a limited client)
    count_statuses = False
    ttfb = False  # record time to first byte (streamed replies: costs generator CPU)
    think_s = 0.0  # closed model: a user's pause between a reply and its next request
    keys: KeySampler | None = None
    schedule: OpenSchedule | None = None
    slots: ClassVar[list[int]] = []  # the open schedule's connection slots this process runs
    worker_index, worker_count = 0, 1
    bystander_path = "/"
    bystander_interval_s = 0.0  # a paced bystander user's time between request starts
    with_bystander = False
    target = Recorder()
    bystander = Recorder()
    cpu_before: Any = None
    cpu_seconds = 0.0
    window_s = 0.0
    opened_at = 0.0
    # A worker's own target (`pairbench worker --host URL`), set by agent.run_worker: locust's
    # worker replaces environment.host with the master's on every spawn message, so a worker on
    # another machine would load the master's loopback (docs/distributed.md).
    own_host: str | None = None

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
    response: Any = None,
    request_type: str = "",
    response_length: int = 0,
    start_time: float = 0.0,
    url: str = "",
    **_: Any,
) -> None:
    """locust's request event listener: runs in the user's greenlet, so it stays tiny.

    Every argument locust passes is named, unused or not: what `**_` catches is packed into a
    new dict on every request, generator CPU spent for nothing.
    """
    if name.startswith(BYSTANDER_PREFIX):
        Trial.bystander.record(response_time, exception)
        return
    if name.startswith(UNMEASURED_PREFIX):
        return
    planned = context.get("planned") if context else None
    if Trial.ttfb:
        # Streamed: response_time is the time to the first byte; the user records the rest.
        if exception is None:
            Trial.target.record_ttfb(response_time, planned)
        return
    if exception is None:
        if response.status_code not in Trial.expected[name]:
            exception = STATUS_ERROR
    elif type(exception) is LocustBadStatusCode and response.status_code in Trial.expected[name]:
        # locust's client fails every 4xx and 5xx; a status the step lists (a 429 a limited
        # client expects) is a complete reply, its body read like any other.
        exception = None
    status = response.status_code if Trial.count_statuses and response is not None else None
    Trial.target.record(response_time, exception, planned, status)


def send(user: FastHttpUser, planned: float | None) -> None:
    """One iteration of the variant's request: one step, or its sequence."""
    context = {"planned": planned} if planned is not None else {}
    key = str(Trial.keys()) if Trial.keys is not None else None
    if Trial.simple:
        step = Trial.steps[0]
        path, headers, body = step.args(key)
        if Trial.ttfb:
            _timed(user, step, path, headers, body, context, planned)
        else:
            user.client.request(
                step.method, path, name=step.name, headers=headers, data=body, context=context
            )
        return
    replies: dict[int, Any] = user.replies  # type: ignore[attr-defined]
    planned_at = Trial.planned_at
    scheduled = planned
    for index, step in enumerate(Trial.steps):
        planned = scheduled if index == planned_at else None
        context = {"planned": planned} if planned is not None else {}
        if step.once and index in replies:
            continue
        path, headers, body = step.args(key)
        if step.carry:
            previous = replies.get(index - 1)
            if previous is not None:
                headers = {**headers}
                for into, source in step.carry:
                    value = previous.get(source)
                    if value is not None:
                        headers[into] = value
        if Trial.ttfb and step.measure:
            reply = _timed(user, step, path, headers, body, context, planned)
        else:
            reply = user.client.request(
                step.method, path, name=step.name, headers=headers, data=body, context=context
            )
        replies[index] = reply.headers


def _timed(
    user: FastHttpUser,
    step: Step,
    path: str,
    headers: dict[str, str],
    body: str | None,
    context: dict[str, Any],
    planned: float | None,
) -> Any:
    """A streamed request: locust's event times the first byte, this the whole reply."""
    t0 = time.perf_counter()
    reply = user.client.request(
        step.method, path, name=step.name, headers=headers, data=body, context=context, stream=True
    )
    error: BaseException | None = None
    try:
        reply.content  # noqa: B018 - reading the body is the point: full latency ends here
    except Exception as e:  # a reset mid-body is a failed request, as locust would count it
        error = e
    if error is None and reply.status_code not in Trial.expected[step.name]:
        error = STATUS_ERROR
    status = reply.status_code if Trial.count_statuses else None
    Trial.target.record((time.perf_counter() - t0) * 1000.0, error, planned, status)
    return reply


class _User(FastHttpUser):
    """Every user of a trial: on a worker given its own --host, that host, not the master's."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        if Trial.own_host:
            # An instance attribute, read by FastHttpUser.__init__ when it builds the client:
            # the class attribute is the one locust overwrites with the master's host.
            self.host = Trial.own_host
        super().__init__(environment)


class ClosedUser(_User):
    """Closed model: sends the next request when the previous reply arrived (plus think time)."""

    def wait_time(self) -> float:
        return Trial.think_s

    def on_start(self) -> None:
        self.replies: dict[int, Any] = {}  # step index -> its last reply's headers

    @task
    def hit(self) -> None:
        if Trial.simple and not Trial.ttfb:
            # The common case, kept as lean as locust's own client.get: everything precomputed.
            step = Trial.steps[0]
            if Trial.keys is None:
                self.client.request(
                    step.method, step.path, name=step.name, headers=step.headers, data=step.body
                )
            else:
                path, headers, body = step.args(str(Trial.keys()))
                self.client.request(step.method, path, name=step.name, headers=headers, data=body)
        else:
            send(self, None)


class OpenUser(_User):
    """Open model: one connection of the schedule, sending at its planned times, late if busy."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.slot = Trial.next_slot()
        self.k = 0
        self.replies: dict[int, Any] = {}

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
        send(self, planned)


class BystanderUser(_User):
    """Hits a cheap endpoint while the variant is loaded: its latency shows collateral damage.

    Back to back, or paced (the scenario's bystander `rate`): each request starts an interval
    after the previous one started, or at once when that reply took longer (locust's
    constant_pacing, with the interval set per trial)."""

    started = 0.0

    def wait_time(self) -> float:
        if not Trial.bystander_interval_s:
            return 0.0
        return max(0.0, self.started + Trial.bystander_interval_s - time.perf_counter())

    @task
    def hit(self) -> None:
        self.started = time.perf_counter()
        self.client.get(Trial.bystander_path, name=BYSTANDER_PREFIX + Trial.bystander_path)


USER_CLASSES: list[type[FastHttpUser]] = [ClosedUser, OpenUser, BystanderUser]


def configure(
    command: dict[str, Any], worker_index: int = 0, worker_count: int = 1
) -> list[type[FastHttpUser]]:
    """Set up this process for a trial; returns the user classes to start."""
    steps = command.get("steps") or [
        {"method": "GET", "path": command["path"], "headers": {}, "body": None, "status": 200}
    ]
    Trial.steps = [Step(i, step) for i, step in enumerate(steps)]
    Trial.expected = {
        s.name: _accepted(raw.get("status", 200)) for s, raw in zip(Trial.steps, steps, strict=True)
    }
    Trial.count_statuses = any(len(accepted) > 1 for accepted in Trial.expected.values())
    Trial.simple = len(Trial.steps) == 1 and not Trial.steps[0].carry
    Trial.planned_at = next((i for i, s in enumerate(Trial.steps) if s.measure), 0)
    Trial.ttfb = bool(command.get("ttfb"))
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
        rate = bystander.get("rate")
        Trial.bystander_interval_s = int(bystander["users"]) / float(rate) if rate else 0.0
        classes.append(BystanderUser)
    return classes


def _accepted(status: int | list[int]) -> frozenset[int]:
    """A concrete step's status, one or a list (harness/request.py), as the set it accepts."""
    return frozenset(int(s) for s in status) if isinstance(status, list) else frozenset({status})


def start_delay(command: dict[str, Any]) -> float:
    """Seconds the open schedule waits for its connections' greenlets; the closed model none."""
    return OPEN_START_DELAY_S if command.get("model", "closed") == "open" else 0.0


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
    while Trial.schedule is not None and time.perf_counter() < deadline and _owed():
        gevent.sleep(0.005)


def _owed() -> bool:
    """Open model: a request planned inside the window is still in flight or not yet sent.

    A user asleep until a send time just before the close wakes a moment after it: that request
    is late, not dropped, and it must reach the histogram (wrk2 counts it from its plan).
    """
    schedule, window = Trial.schedule, Trial.target.window
    if schedule is None or window is None:
        return False
    due = schedule.due(window[0], window[1], Trial.slots)
    return bool(Trial.target.in_flight > 0 or Trial.target.sent < due)


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
