"""Each variant over time: its trials in the order they ran, with percentile bands and rates.

Slow drift (a warming cache, a filling disk, a noisy neighbour) shows here and nowhere else:
every other figure merges the rounds. Invalid trials are drawn too, marked, because this is
the figure that explains them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..analysis.findings import NO_DATA
from ..analysis.knobs import knob_key, knob_text
from ..analysis.rounds import per_round
from ..analysis.stats import cells_of
from ..io import histograms
from ..report.formatting import fmt_ratio
from .canvas import column, finish, log_if_wide, new_figure, no_data
from .palette import variant_colours

WIDTH_IN = 12.0
ROW_IN = 2.3  # height of one variant's row
SECONDS_PER_MINUTE = 60.0
MINUTES_FROM_S = 300.0  # a run longer than this is plotted in minutes
INNER_BAND_ALPHA = 0.35  # p50..p90
OUTER_BAND_ALPHA = 0.15  # p90..p99
INVALID_COLOUR = "#616161"
KNOB_LINE_COLOUR = "#9e9e9e"
LATENCY_LOG_SPAN = 10.0
BAND_METRICS = ("p50", "p90", "p99")  # the line and the bands of a latency row

Pair = Mapping[str, Any]
Trial = Mapping[str, Any]


def timeline_figure(pair: Pair, caption_text: str) -> Figure:
    """One row per variant: p50/p90/p99 bands per trial, and requests/s and errors/s."""
    trials = sorted(pair.get("trials", []), key=lambda t: float(t["started_at"]))
    variants = pair["variants"]
    figure = new_figure((WIDTH_IN, ROW_IN * len(variants) + 1.0))
    rows = figure.subplots(len(variants), 2, squeeze=False, sharex=True)
    colours = variant_colours(variants)
    start = float(trials[0]["started_at"]) if trials else 0.0
    span = max((_end(t) - start for t in trials), default=0.0)
    unit, divisor = ("min", SECONDS_PER_MINUTE) if span > MINUTES_FROM_S else ("s", 1.0)

    def when(trial: Trial) -> float:
        return (float(trial["started_at"]) + float(trial["elapsed_s"]) / 2 - start) / divisor

    changes = _knob_changes(pair, trials, start, divisor)
    for row, variant in zip(rows, variants, strict=True):
        name = variant["name"]
        mine = [t for t in trials if t["variant"] == name]
        # One line per stretch of a knob value: no line drawn across a change of knob.
        for _, run_of_knob in itertools.groupby(mine, key=lambda t: knob_key(t["knob"])):
            segment = list(run_of_knob)
            _latency(row[0], segment, [when(t) for t in segment], colours[name])
            _rates(row[1], segment, [when(t) for t in segment], colours[name])
        if not row[0].get_lines():
            no_data(row[0], NO_DATA)
        log_if_wide(row[0], LATENCY_LOG_SPAN)
        row[1].set_ylim(bottom=0)
        row[0].set_ylabel(f"{name}\nlatency (ms)")
        row[1].set_ylabel("per second")
        for axes in row:
            for x, _ in changes:
                axes.axvline(x, color=KNOB_LINE_COLOUR, linewidth=0.8, linestyle=":")
            axes.grid(True, which="both", alpha=0.3)
    for x, label in changes:
        rows[0][0].annotate(
            label,
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            va="top",
            fontsize="x-small",
        )
    rows[0][0].set_title("p50 line; p50–p90 and p90–p99 bands; x: invalid", fontsize="medium")
    rows[0][1].set_title("requests/s solid, errors/s dashed", fontsize="medium")
    for axes in rows[-1]:
        axes.set_xlabel(f"time since the first trial ({unit})")
    title = f"{pair['title']} over time: {timeline_finding(pair)}"
    return finish(figure, title, caption_text)


def timeline_finding(pair: Pair) -> str:
    """How steady the rounds were: the widest round-to-round p50 spread of any cell."""
    trials = pair.get("trials", [])
    invalid = sum(1 for t in trials if t.get("valid") is not True)
    spreads = {}
    for (key, variant), cell in cells_of(pair).items():
        values = list(per_round(cell, "p50").values())
        if len(values) >= 2:
            spreads[key, variant] = max(values) / min(values)
    counted = f"{invalid} of {len(trials)} trials invalid"
    if not spreads:
        return f"{counted}; too few rounds to judge their spread" if trials else NO_DATA
    (key, variant), widest = max(spreads.items(), key=lambda item: item[1])
    return (
        f"round-to-round p50 spread at most {fmt_ratio(widest)} "
        f"({variant} at {knob_text(pair, key)}); {counted}"
    )


def _band_ms(trial: Trial) -> dict[str, float | None]:
    """The trial's p50, p90 and p99 in ms, as summary_ms gives them: only what a row draws.

    summary_ms adds the mean, a pass in Python over every bucket of the histogram, which
    was most of this figure's time for nothing drawn.
    """
    histogram = histograms.decode(trial["histogram"])
    wanted = {f"{m}_ms": histograms.PERCENTILE_METRICS[m] for m in BAND_METRICS}
    if histogram.get_total_count() == 0:
        return dict.fromkeys(wanted)
    by_percentile = histogram.get_percentile_to_value_dict(list(wanted.values()))
    return {key: by_percentile[p] / histograms.US_PER_MS for key, p in wanted.items()}


def _latency(axes: Axes, trials: Sequence[Trial], x: Sequence[float], colour: str) -> None:
    summaries = [_band_ms(t) for t in trials]
    points = [(xi, s) for xi, s in zip(x, summaries, strict=True) if s["p50_ms"] is not None]
    if not points:
        return
    xs = [p[0] for p in points]
    p50, p90, p99 = (column([p[1] for p in points], f"{m}_ms") for m in ("p50", "p90", "p99"))
    axes.fill_between(xs, p50, p90, color=colour, alpha=INNER_BAND_ALPHA, linewidth=0)
    axes.fill_between(xs, p90, p99, color=colour, alpha=OUTER_BAND_ALPHA, linewidth=0)
    axes.plot(xs, p50, "-", color=colour, linewidth=1)
    axes.plot(xs, p99, linestyle="none")  # invisible: lets the log decision see the p99s
    invalid = [
        (xi, s["p50_ms"])
        for xi, s, t in zip(x, summaries, trials, strict=True)
        if t.get("valid") is not True and s["p50_ms"] is not None
    ]
    if invalid:
        axes.plot(*zip(*invalid, strict=True), "x", color=INVALID_COLOUR, label="invalid")


def _rates(axes: Axes, trials: Sequence[Trial], x: Sequence[float], colour: str) -> None:
    # A zero-length window has no rate: NaN leaves a gap instead of dividing by zero.
    seconds = [float(t["elapsed_s"]) or math.nan for t in trials]
    requests = [int(t["requests"]) / s for t, s in zip(trials, seconds, strict=True)]
    errors = [int(t["errors"]) / s for t, s in zip(trials, seconds, strict=True)]
    axes.plot(x, requests, "-", color=colour)
    axes.plot(x, errors, "--", color=colour)


def _knob_changes(
    pair: Pair, trials: Sequence[Trial], start: float, divisor: float
) -> list[tuple[float, str]]:
    """Where each run of one knob value begins: (x, "n=10")."""
    changes: list[tuple[float, str]] = []
    previous = None
    for trial in trials:
        key = knob_key(trial["knob"])
        if key != previous:
            x = (float(trial["started_at"]) - start) / divisor
            changes.append((x, knob_text(pair, key)))
            previous = key
    return changes


def _end(trial: Trial) -> float:
    return float(trial["started_at"]) + float(trial["elapsed_s"])
