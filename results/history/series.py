"""Per pair, over a group's runs: the headline ratio and each good variant's latency, with their
95% intervals and change points (docs/architecture.md, History).

One knob value and one good variant per pair for the whole line, both taken from the latest run
(the expectation's knob value, the best good variant there), so every point compares like with
like. Every run is analysed afresh (`analyse_pair`); the stored analysis is never trusted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..analysis.expectation import best_good, good_variants
from ..analysis.knobs import expectation_knob_key, knob_text
from ..analysis.ratios import mean_with_ci
from ..analysis.rounds import per_round
from ..analysis.stats import analyse_pair, cells_of, ratio_metric, ratio_subject
from .changes import Detection, detect
from .runs import RunGroup

HEADLINE = "headline"


@dataclass(frozen=True)
class Point:
    """One run's value with its 95% interval; all None when the run has no such value."""

    value: float | None
    ci_low: float | None
    ci_high: float | None

    def as_dict(self) -> dict[str, float | None]:
        """JSON-ready."""
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


MISSING = Point(None, None, None)


@dataclass(frozen=True)
class Series:
    """One line over a group's runs: a point per run, in the group's order, and its changes."""

    name: str  # HEADLINE or a good variant's name
    points: tuple[Point, ...]
    detection: Detection

    def values(self) -> list[float | None]:
        """The points' values."""
        return [p.value for p in self.points]


@dataclass(frozen=True)
class PairHistory:
    """One pair over a group's runs."""

    pair: str
    title: str
    bad: str
    good: str | None  # the best good variant in the latest run that has one
    knob: str | None  # the knob key of the latest run's expectation
    knob_text: str  # e.g. `n=200`
    metric: str  # the expectation's metric, e.g. p50
    subject: str  # variant or bystander
    headline: Series  # bad / good
    latency: tuple[Series, ...]  # one per good variant, in ms

    def changes_at(self, index: int) -> list[tuple[str, float]]:
        """(series name, relative change) of every change point starting at a run index."""
        return [
            (series.name, change.change)
            for series in (self.headline, *self.latency)
            for change in series.detection.changes
            if change.index == index
        ]


def pair_names(group: RunGroup) -> list[str]:
    """Every pair measured in a group, in the order they first appear."""
    names: dict[str, None] = {}
    for stored in group.runs:
        names.update(dict.fromkeys(stored.run["pairs"]))
    return list(names)


def group_histories(group: RunGroup, pairs: Sequence[str] | None = None) -> list[PairHistory]:
    """A history per pair of the group (only `pairs`, when given, that the group has)."""
    names = [n for n in pair_names(group) if pairs is None or n in pairs]
    records = [stored.run["pairs"] for stored in group.runs]
    analyses: list[dict[str, Any]] = [{} for _ in records]
    for name in names:
        for i, run_pairs in enumerate(records):
            if name in run_pairs:
                analyses[i][name] = analyse_pair(run_pairs[name])
    return [pair_history(name, records, analyses) for name in names]


def pair_history(
    name: str,
    records: Sequence[Mapping[str, Mapping[str, Any]]],
    analyses: Sequence[Mapping[str, Mapping[str, Any]]],
) -> PairHistory:
    """One pair's series from each run's pair records and analyses (oldest first)."""
    present = [i for i, run_pairs in enumerate(records) if name in run_pairs]
    latest = records[present[-1]][name]
    key = expectation_knob_key(latest)
    good = _line_good(name, records, analyses, key)
    goods = good_variants(latest)
    headline = []
    latencies: dict[str, list[Point]] = {g: [] for g in goods}
    for run_pairs, analysis in zip(records, analyses, strict=True):
        pair = run_pairs.get(name)
        if pair is None or key is None:
            headline.append(MISSING)
            for points in latencies.values():
                points.append(MISSING)
            continue
        ratio = (analysis[name]["ratios"].get(key) or {}).get(good or "") or {}
        headline.append(
            Point(ratio.get("bad_over_good"), ratio.get("ci_low"), ratio.get("ci_high"))
        )
        cells = cells_of(pair)
        for g, points in latencies.items():
            points.append(_latency(pair, cells.get((key, g), [])))
    return PairHistory(
        pair=name,
        title=str(latest.get("title") or name),
        bad=str(latest["bad"]),
        good=good,
        knob=key,
        knob_text=knob_text(latest, key) if key is not None else "no knob value",
        metric=ratio_metric(latest),
        subject=ratio_subject(latest),
        headline=_series(HEADLINE, headline),
        latency=tuple(_series(g, points) for g, points in latencies.items()),
    )


def _line_good(
    name: str,
    records: Sequence[Mapping[str, Mapping[str, Any]]],
    analyses: Sequence[Mapping[str, Mapping[str, Any]]],
    key: str | None,
) -> str | None:
    """The best good variant at `key` in the latest run that has one."""
    if key is None:
        return None
    for run_pairs, analysis in zip(reversed(records), reversed(analyses), strict=True):
        if name in run_pairs:
            good = best_good(run_pairs[name], analysis[name], key)
            if good is not None:
                return good
    return None


def _latency(pair: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> Point:
    """The geometric mean of one cell's per-round values of the ratio's metric (and subject),
    with the t-interval the ratios use."""
    rounds = per_round(trials, ratio_metric(pair), ratio_subject(pair))
    return Point(*mean_with_ci(list(rounds.values())))


def _series(name: str, points: Sequence[Point]) -> Series:
    return Series(name, tuple(points), detect([p.value for p in points]))
