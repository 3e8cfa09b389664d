"""Per-trial latency recording for the load agent: HdrHistograms and the open model's ledger.

Pure Python, no gevent: the agent calls it from locust's request event, in the user's greenlet,
so every method is a few arithmetic operations.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from collections.abc import Iterable
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
        self.ttfb = new_histogram()  # client-side time to first byte, when the trial asks for it
        self.window: tuple[float, float] | None = None  # [open, close) in perf_counter seconds
        self.requests = self.errors = self.clipped = 0
        self.sent = self.late = self.in_flight = 0
        # HTTP status -> replies, kept when the trial asks (a step that accepts several statuses)
        self.statuses: dict[int, int] = {}

    def start(self) -> None:
        self.histogram.reset()
        self.service.reset()
        self.ttfb.reset()
        self.requests = self.errors = self.clipped = 0
        self.sent = self.late = self.in_flight = 0
        self.statuses = {}
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
        self,
        response_time_ms: float,
        exception: BaseException | None,
        planned: float | None = None,
        status: int | None = None,
    ) -> None:
        """One completed request (success or failure); `status` is counted when given."""
        if planned is None:
            if not self._in_window(time.perf_counter()):
                return
        else:
            if not self._in_window(planned):
                return
            self.in_flight -= 1
        self.requests += 1
        if status:  # None: not counted; 0: no reply (a transport error)
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if exception is not None:
            self.errors += 1
            return
        if planned is None:
            self.histogram.record_value(self._value(response_time_ms / 1000.0))
        else:
            self.histogram.record_value(self._value(time.perf_counter() - planned))
            self.service.record_value(self._value(response_time_ms / 1000.0))

    def record_ttfb(self, ttfb_ms: float, planned: float | None = None) -> None:
        """Time to first byte of a successful request (from its actual send, never planned)."""
        if self._in_window(time.perf_counter() if planned is None else planned):
            self.ttfb.record_value(self._value(ttfb_ms / 1000.0))

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "clipped": self.clipped,
            "histogram": self.histogram.encode().decode("ascii"),
        }
        if self.service.get_total_count():
            out["service_histogram"] = self.service.encode().decode("ascii")
        if self.ttfb.get_total_count():
            out["ttfb_histogram"] = self.ttfb.encode().decode("ascii")
        if self.statuses:
            out["statuses"] = {str(k): v for k, v in sorted(self.statuses.items())}
        return out


class OpenSchedule:
    """wrk2's plan: connection j sends its k-th request at t0 + (j + k * connections) / rate."""

    def __init__(self, rate: float, connections: int, t0: float) -> None:
        self.rate, self.connections, self.t0 = rate, connections, t0
        self.slots = itertools.count()

    def planned(self, slot: int, k: int) -> float:
        return self.t0 + (slot + k * self.connections) / self.rate

    def due(self, start: float, end: float, slots: Iterable[int] | None = None) -> int:
        """How many requests were planned in [start, end), for `slots` (default: all)."""
        if slots is None:
            first = math.ceil(max(0.0, (start - self.t0)) * self.rate)
            last = math.ceil(max(0.0, (end - self.t0)) * self.rate)
            return max(0, last - first)
        return sum(self._due_for(slot, start, end) for slot in slots)

    def _due_for(self, slot: int, start: float, end: float) -> int:
        # Connection `slot` sends at t0 + (slot + k * connections) / rate, k = 0, 1, ...
        def first_k_at_or_after(t: float) -> int:
            return max(0, math.ceil(((t - self.t0) * self.rate - slot) / self.connections))

        return max(0, first_k_at_or_after(end) - first_k_at_or_after(start))


class KeySampler:
    """Zipf-distributed keys 1..count (exponent 0 is uniform), seeded: a run redraws the same keys."""

    def __init__(self, count: int, exponent: float, seed: int) -> None:
        self.cdf = list(itertools.accumulate(1.0 / (k**exponent) for k in range(1, count + 1)))
        self.rng = random.Random(seed)

    def __call__(self) -> int:
        return bisect.bisect_left(self.cdf, self.rng.random() * self.cdf[-1]) + 1


def _merged(encoded: list[str]) -> str:
    histogram = new_histogram()
    for one in encoded:
        histogram.add(HdrHistogram.decode(one))
    return str(histogram.encode().decode("ascii"))


def merge_parts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One trial's result from every load process, merged exactly (histograms, not percentiles)."""
    elapsed = max(p["window_s"] for p in parts)
    merged: dict[str, Any] = {
        "elapsed_s": elapsed,
        "requests": sum(p["requests"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "clipped": sum(p["clipped"] for p in parts),
        "histogram": _merged([p["histogram"] for p in parts]),
        # The validity rule is per process: one saturated generator taints the trial.
        "generator_cpu_percent": max(p["cpu_percent"] for p in parts),
        "processes": [{"requests": p["requests"], "cpu_percent": p["cpu_percent"]} for p in parts],
        "bystander": None,
    }
    services = [p["service_histogram"] for p in parts if "service_histogram" in p]
    if services:
        merged["service_histogram"] = _merged(services)
    ttfbs = [p["ttfb_histogram"] for p in parts if "ttfb_histogram" in p]
    if ttfbs:
        merged["ttfb_histogram"] = _merged(ttfbs)
    statuses: dict[str, int] = {}
    for part in parts:
        for status, count in (part.get("statuses") or {}).items():
            statuses[status] = statuses.get(status, 0) + count
    if statuses:
        merged["statuses"] = dict(sorted(statuses.items()))
    bystanders = [p["bystander"] for p in parts if p.get("bystander")]
    if bystanders:
        merged["bystander"] = {
            "requests": sum(b["requests"] for b in bystanders),
            "errors": sum(b["errors"] for b in bystanders),
            "clipped": sum(b["clipped"] for b in bystanders),
            "histogram": _merged([b["histogram"] for b in bystanders]),
        }
    ledgers = [p["open"] for p in parts if p.get("open")]
    if ledgers:
        due, sent = sum(b["due"] for b in ledgers), sum(b["sent"] for b in ledgers)
        merged["open"] = {
            "target_rate": ledgers[0]["rate"],
            "achieved_rate": merged["requests"] / elapsed if elapsed > 0 else 0.0,
            "due": due,
            "sent": sent,
            "late": sum(b["late"] for b in ledgers),
            "dropped": max(0, due - sent),
        }
    return merged
