"""Per-trial latency recording for the load agent: HdrHistograms and the open model's books.

Pure Python, no gevent: the agent calls it from locust's request event, in the user's greenlet,
so every method is a few arithmetic operations.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from typing import Any

from hdrh.histogram import HdrHistogram

HIST_LOWEST_US = 1
HIST_HIGHEST_US = 60_000_000  # one minute: any slower request is a failure anyway
HIST_SIGNIFICANT_DIGITS = 3
LATE_THRESHOLD_S = 0.001  # an open-model request sent this much after its planned time is late


def new_histogram() -> HdrHistogram:
    """Microseconds, 1 us to 60 s, 3 significant digits: exact to 0.1%, mergeable."""
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_SIGNIFICANT_DIGITS)


class Recorder:
    """One measurement window's histogram and counts.

    Closed model: latency is locust's response time, for requests completing in the window.
    Open model: latency runs from the request's *planned* send time (coordinated omission
    corrected, as wrk2 does) and the service time (from the actual send) goes to a second
    histogram. A request belongs to the window its planned time falls in, however late it
    completes, so a stall at the window's end is not cut off.
    """

    def __init__(self) -> None:
        self.histogram = new_histogram()
        self.service = new_histogram()
        self.window: tuple[float, float] | None = None  # [open, close) in perf_counter seconds
        self.requests = self.errors = self.clipped = 0
        self.sent = self.late = self.in_flight = 0

    def start(self) -> None:
        self.histogram.reset()
        self.service.reset()
        self.requests = self.errors = self.clipped = 0
        self.sent = self.late = self.in_flight = 0
        self.window = (time.perf_counter(), math.inf)

    def stop(self) -> None:
        if self.window is not None:
            self.window = (self.window[0], time.perf_counter())

    def _in_window(self, t: float) -> bool:
        return self.window is not None and self.window[0] <= t < self.window[1]

    def on_send(self, planned: float) -> None:
        """Open model: a request planned for `planned` is being sent now."""
        if self._in_window(planned):
            self.sent += 1
            self.in_flight += 1
            if time.perf_counter() - planned > LATE_THRESHOLD_S:
                self.late += 1

    def _value(self, seconds: float) -> int:
        value = int(seconds * 1_000_000.0 + 0.5)
        if value > HIST_HIGHEST_US:
            self.clipped += 1
            return HIST_HIGHEST_US
        return max(HIST_LOWEST_US, value)

    def record(
        self, response_time_ms: float, exception: BaseException | None, planned: float | None = None
    ) -> None:
        """One completed request (success or failure)."""
        if planned is None:
            if not self._in_window(time.perf_counter()):
                return
        else:
            if not self._in_window(planned):
                return
            self.in_flight -= 1
        self.requests += 1
        if exception is not None:
            self.errors += 1
            return
        if planned is None:
            self.histogram.record_value(self._value(response_time_ms / 1000.0))
        else:
            self.histogram.record_value(self._value(time.perf_counter() - planned))
            self.service.record_value(self._value(response_time_ms / 1000.0))

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "clipped": self.clipped,
            "histogram": self.histogram.encode().decode("ascii"),
        }
        if self.service.get_total_count():
            out["service_histogram"] = self.service.encode().decode("ascii")
        return out


class OpenSchedule:
    """wrk2's plan: connection j sends its k-th request at t0 + (j + k * connections) / rate."""

    def __init__(self, rate: float, connections: int, t0: float) -> None:
        self.rate, self.connections, self.t0 = rate, connections, t0
        self.slots = itertools.count()

    def planned(self, slot: int, k: int) -> float:
        return self.t0 + (slot + k * self.connections) / self.rate

    def due(self, start: float, end: float) -> int:
        """How many requests were planned in [start, end): all connections together."""
        first = math.ceil(max(0.0, (start - self.t0)) * self.rate)
        last = math.ceil(max(0.0, (end - self.t0)) * self.rate)
        return max(0, last - first)


class KeySampler:
    """Zipf-distributed keys 1..count (exponent 0 is uniform), seeded: a run redraws the same keys."""

    def __init__(self, count: int, exponent: float, seed: int) -> None:
        self.cdf = list(itertools.accumulate(1.0 / (k**exponent) for k in range(1, count + 1)))
        self.rng = random.Random(seed)

    def __call__(self) -> int:
        return bisect.bisect_left(self.cdf, self.rng.random() * self.cdf[-1]) + 1
