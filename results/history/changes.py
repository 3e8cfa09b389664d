"""Change points of a series of runs: Apache Otava's E-Divisive means, on the log of the values.

Otava is optional (`pip install 'pairbench[history]'`): without it a history is still printed
and drawn, and every series says why it has no change points. The detection works on logs
because ratios and latencies change by factors: 2x to 4x is the same step as 4x to 8x, a
halving is as large as a doubling, and noise that grows with the level stays even
(docs/architecture.md, History).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

INSTALL_HINT = "change points need Apache Otava: pip install 'pairbench[history]'"
# Otava's own defaults (otava.series.AnalysisOptions): a 50-point sliding window, and a change
# point must split its stretch into parts a t-test tells apart at p <= 0.001.
WINDOW = 50
MAX_P_VALUE = 0.001
# Fewer points than this cannot show a change with runs on both sides of it.
MIN_POINTS = 6
# A step must also be this large either way (a factor of 1.1): between separate runs on a shared
# machine a significant 3% step is noise of the day (docs/architecture.md, History).
MIN_CHANGE = 0.10


@dataclass(frozen=True)
class Change:
    """A step in a series: from `index` on (a position in the series) the level moved."""

    index: int  # the first point of the new level
    before: float  # geometric mean of the points since the previous change
    after: float  # geometric mean of the points up to the next change
    p_value: float  # Otava's t-test between the two stretches (on logs)

    @property
    def change(self) -> float:
        """The relative step, after / before - 1: +0.35 is 35% up."""
        return self.after / self.before - 1.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the relative change."""
        return {**asdict(self), "change": self.change}


@dataclass(frozen=True)
class Detection:
    """The change points of one series, or why there are none to look for."""

    changes: tuple[Change, ...]
    note: str | None  # None when detection ran; else why not (too few points, no Otava)

    @property
    def ran(self) -> bool:
        """True when Otava looked at the series."""
        return self.note is None


def otava_available() -> bool:
    """True when Apache Otava can be imported."""
    try:
        import otava.analysis  # noqa: F401
    except ImportError:
        return False
    return True


def detect(values: Sequence[float | None], min_change: float = MIN_CHANGE) -> Detection:
    """Change points of a series; a missing (None) or non-positive value is skipped, and the
    indexes refer to `values`. Steps smaller than `min_change` either way are dropped."""
    kept = [(i, v) for i, v in enumerate(values) if v is not None and v > 0]
    if len(kept) < MIN_POINTS:
        return Detection((), f"{len(kept)} points, change points need at least {MIN_POINTS}")
    if not otava_available():
        return Detection((), INSTALL_HINT)
    logs = [math.log(v) for _, v in kept]
    changes = [
        Change(
            index=kept[int(point.index)][0],
            before=math.exp(float(point.stats.mean_1)),
            after=math.exp(float(point.stats.mean_2)),
            p_value=float(point.stats.pvalue),
        )
        for point in _change_points(logs, math.log1p(min_change))
    ]
    return Detection(tuple(changes), None)


def _change_points(logs: Sequence[float], min_step: float) -> list[Any]:
    """Otava's change points of a log series, then, smallest first, those whose step (a
    difference of mean logs) is below `min_step` removed, the neighbours' statistics recomputed
    and the rest merged again by p-value, with Otava's own tester and merge step.

    Otava's `min_magnitude` cannot do this: it is a relative change of the means, which on logs
    means nothing.
    """
    from otava.analysis import TTestSignificanceTester, compute_change_points, merge

    points, _weak = compute_change_points(logs, window_len=WINDOW, max_pvalue=MAX_P_VALUE)
    tester = TTestSignificanceTester(MAX_P_VALUE)
    while points:
        smallest = min(points, key=lambda p: abs(p.stats.mean_2 - p.stats.mean_1))
        if abs(smallest.stats.mean_2 - smallest.stats.mean_1) >= min_step:
            break
        points.remove(smallest)
        intervals = tester.get_intervals(points)
        points = [tester.change_point(p.to_candidate(), logs, intervals) for p in points]
        points = merge(points, logs, MAX_P_VALUE, 0.0)
    return list(points)
