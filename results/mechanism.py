"""The mechanism behind the latency, per (knob, variant) cell, from the server-side counters.

Each figure divides summed counters over the cell's trials; only trials that report every
counter a figure needs count on either side of its division, so a trial scraped without
/metrics never dilutes the figure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .rounds import Trial

MS_PER_SECOND = 1000.0

Compute = Callable[[Sequence[Trial]], float | None]


@dataclass(frozen=True)
class Mechanism:
    """One mechanism figure: its analysis key, how people read it, how it is computed."""

    key: str
    label: str  # axis label and table header, with the unit
    short: str  # for prose: "queries per request"
    percent: bool  # a fraction shown as a percentage
    compute: Compute
    unit: str = ""  # after a value in prose: " ms"


def _counter_ratio(numerator: str, denominator: Sequence[str] | None = None) -> Compute:
    """sum(numerator) / sum(denominator counters), or / requests when no denominator given."""

    def compute(trials: Sequence[Trial]) -> float | None:
        needed = [numerator, *(denominator or ())]
        counted = [t for t in trials if all(k in (t.get("counters") or {}) for k in needed)]
        top = sum(float(t["counters"][numerator]) for t in counted)
        if denominator is None:
            bottom = float(sum(int(t["requests"]) for t in counted))
        else:
            bottom = sum(float(t["counters"][k]) for t in counted for k in denominator)
        return top / bottom if bottom > 0 else None

    return compute


def _loop_lag_ms(trials: Sequence[Trial]) -> float | None:
    mean_s = _counter_ratio("loop_lag_seconds_sum", ["loop_lag_samples"])(trials)
    return None if mean_s is None else mean_s * MS_PER_SECOND


def _error_ratio(trials: Sequence[Trial]) -> float | None:
    requests = sum(int(t["requests"]) for t in trials)
    return sum(int(t["errors"]) for t in trials) / requests if requests else None


MECHANISMS: tuple[Mechanism, ...] = (
    Mechanism(
        key="queries_per_request",
        label="queries / request",
        short="queries per request",
        percent=False,
        compute=_counter_ratio("queries"),
    ),
    Mechanism(
        key="connections_per_request",
        label="connections opened / request",
        short="connections opened per request",
        percent=False,
        compute=_counter_ratio("db_connections_opened"),
    ),
    Mechanism(
        key="cache_hit_ratio",
        label="cache hit ratio (%)",
        short="cache hit ratio",
        percent=True,
        compute=_counter_ratio("cache_hits", ["cache_hits", "cache_misses"]),
    ),
    Mechanism(
        key="loop_lag_ms",
        label="event-loop lag, mean (ms)",
        short="mean event-loop lag",
        percent=False,
        unit=" ms",
        compute=_loop_lag_ms,
    ),
    Mechanism(
        key="error_ratio",
        label="errors (%)",
        short="error ratio",
        percent=True,
        compute=_error_ratio,
    ),
)
BY_KEY = {m.key: m for m in MECHANISMS}


def mechanism_summary(trials: Sequence[Trial]) -> dict[str, float | None]:
    """Every mechanism figure of one cell; None where no trial reports its counters."""
    return {m.key: m.compute(trials) for m in MECHANISMS}


def shown(cells: Sequence[Mapping[str, Any]]) -> list[Mechanism]:
    """The mechanisms worth a panel or a column: some cell has a non-zero value."""
    return [m for m in MECHANISMS if any(c.get(m.key) for c in cells)]
