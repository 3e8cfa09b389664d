"""The mechanism behind the latency, per (knob, variant) cell, from the server-side counters.

No counter is known by name here: each figure follows the counter metadata stored with the pair
(docs/architecture.md, What the targets describe): `per` "request" divides the summed counter
by the summed requests, a list of names by the summed counters named, "trial" takes the mean
(the max for a `peak`), and `scale` converts for display. Only trials that report every
counter a figure needs count on either side of its division, so a trial scraped without
/metrics never dilutes it. Runs that stored no metadata get it from results/io/upgrade.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..io.upgrade import upgrade_pair
from .rounds import Trial

PER_REQUEST = "request"
PER_TRIAL = "trial"
PEAK = "peak"
ERRORS = "error_ratio"  # generic: every pair has requests and errors
PERCENT = 100.0
MECHANISM_FIELD = "mechanism"  # the cell's key holding counter name -> value
# Units that measure rather than count: shown beside the number even per request.
MEASURE_UNITS = frozenset({"ms", "s", "%", "MiB", "KiB", "KB", "MB", "GB"})


@dataclass(frozen=True)
class Mechanism:
    """One mechanism figure: the counter it comes from and how people read it."""

    key: str  # the counter's name, or ERRORS
    label: str  # e.g. "SQL statements"
    unit: str  # e.g. "statements", "%", "ms"
    per_request: bool

    @property
    def measured(self) -> bool:
        """Whether the unit is a measure the label does not say (`ms`, `%`, `MiB`), unlike a
        count whose unit is the label's noun (`statements` of `SQL statements`)."""
        return self.unit in MEASURE_UNITS

    @property
    def axis_label(self) -> str:
        """Axis label and table header: `SQL statements / request`, `cache hit ratio (%)`,
        `time in SQL statements / request (ms)`. A share of requests (% per request) is a
        ratio, not an amount per request."""
        if self.unit == "%" or not self.per_request:
            return f"{self.label} ({self.unit})"
        return (
            f"{self.label} / request ({self.unit})" if self.measured else f"{self.label} / request"
        )

    def value(self, cell: Mapping[str, Any]) -> float | None:
        """This figure of an analysis cell, in display units (scale applied)."""
        if self.key == ERRORS:
            ratio = cell.get(ERRORS)
            return None if ratio is None else float(ratio) * PERCENT
        found = (cell.get(MECHANISM_FIELD) or {}).get(self.key)
        return None if found is None else float(found)

    def amount(self, value: float | None, number: str) -> str:
        """A value in words: `201 SQL statements per request`, `cache hit ratio 92%`."""
        if value is None:
            return f"no {self.label}"
        if self.per_request and self.unit != "%":
            if self.measured:
                return f"{self.label}: {number} {self.unit} per request"
            return f"{number} {self.label} per request"
        return f"{self.label} {number}{self.suffix}"

    @property
    def suffix(self) -> str:
        """After a bare number: `%` stuck to it, other units after a space; none for a count
        per request (its label names what is counted)."""
        if self.unit == "%":
            return "%"
        if self.per_request and not self.measured:
            return ""
        return f" {self.unit}"


ERROR_MECHANISM = Mechanism(key=ERRORS, label="errors", unit="%", per_request=False)


def counter_specs(pair: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Counter name -> its metadata, from the pair or, for older runs, from the upgrade."""
    return dict(upgrade_pair(pair)["counters"])


def lesson(pair: Mapping[str, Any]) -> list[Mechanism]:
    """The pair's lesson counters, headline first, then the generic error ratio."""
    upgraded = upgrade_pair(pair)
    specs = upgraded["counters"]
    named = [n for n in upgraded.get("lesson") or [] if n in specs]
    return [*(_mechanism(n, specs[n]) for n in named), ERROR_MECHANISM]


def _mechanism(name: str, spec: Mapping[str, Any]) -> Mechanism:
    return Mechanism(
        key=name,
        label=str(spec.get("label") or name),
        unit=str(spec.get("unit") or ""),
        per_request=spec.get("per") == PER_REQUEST,
    )


def counter_value(trials: Sequence[Trial], name: str, spec: Mapping[str, Any]) -> float | None:
    """One counter over a cell's trials, normalised as its metadata says, times its scale."""
    per = spec.get("per", PER_REQUEST)
    needed = [name, *(per if isinstance(per, list) else [])]
    counted = [t for t in trials if all(k in (t.get("counters") or {}) for k in needed)]
    if not counted:
        return None
    values = [float(t["counters"][name]) for t in counted]
    if per == PER_TRIAL:
        raw = max(values) if spec.get("kind") == PEAK else sum(values) / len(values)
    else:
        if per == PER_REQUEST:
            bottom = float(sum(int(t["requests"]) for t in counted))
        else:
            bottom = sum(float(t["counters"][k]) for t in counted for k in per)
        if bottom <= 0:
            return None
        raw = sum(values) / bottom
    return raw * float(spec.get("scale", 1.0))


def error_ratio(trials: Sequence[Trial]) -> float | None:
    """Failed requests over all requests of the cell's trials, a fraction."""
    requests = sum(int(t["requests"]) for t in trials)
    return sum(int(t["errors"]) for t in trials) / requests if requests else None


def mechanism_summary(pair: Mapping[str, Any], trials: Sequence[Trial]) -> dict[str, Any]:
    """A cell's `mechanism` (every described counter, display units) and `error_ratio`."""
    values = {n: counter_value(trials, n, spec) for n, spec in counter_specs(pair).items()}
    return {MECHANISM_FIELD: values, ERRORS: error_ratio(trials)}


def shown(pair: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]) -> list[Mechanism]:
    """The lesson's figures worth a panel or a column: some cell has a non-zero value."""
    return [m for m in lesson(pair) if any(m.value(c) for c in cells)]
