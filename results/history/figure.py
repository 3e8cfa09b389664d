"""The history figure of a group: per pair, the headline ratio over the runs (top) and the good
variants' latency (below), 95% bands, change points as vertical lines marked "+x%"/"-x%"."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..figures.canvas import PlainLogFormatter, finish, new_figure, no_data, plain_log_y, save
from ..figures.palette import ROLE_COLOURS, variant_colours
from .runs import RunGroup, StoredRun
from .series import PairHistory, Series

WIDTH_IN = 11.0
PANEL_HEIGHT_IN = 2.6
EXTRA_HEIGHT_IN = 1.4  # title, caption, axis labels
BAND_ALPHA = 0.2
CHANGE_COLOUR = "#424242"
HEADLINE_COLOUR = ROLE_COLOURS["bad"][0]  # bad / good: how much the bad variant costs
MAX_TICK_LABELS = 24  # beyond this many runs, every k-th run is labelled
ANNOTATION_STEP_PT = 11  # vertical spacing of stacked change labels
STEM_PREFIX = "history-"
SLUG_CHARS = 60


class RatioLogFormatter(PlainLogFormatter):
    """The plain log labels with an x: 2x, 3x, 10x."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}x"


def percent(change: float) -> str:
    """A relative change as `+35%` or `-12%` (one decimal below 10%)."""
    value = change * 100.0
    return f"{value:+.0f}%" if abs(value) >= 10 else f"{value:+.1f}%"


def run_label(stored: StoredRun) -> str:
    """An x tick: the short commit (with +dirty), else the start time."""
    return stored.short_commit() or stored.started_at.strftime("%m-%d %H:%M")


def figure_stem(group: RunGroup, folder: Path, taken: set[str]) -> Path:
    """`history-<machine>-<profile>` in `folder`, unique among `taken` (which it extends)."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{group.machine} {group.profile}".lower()).strip("-")
    stem = STEM_PREFIX + (slug[:SLUG_CHARS].rstrip("-") or "runs")
    unique, n = stem, 2
    while unique in taken:
        unique, n = f"{stem}-{n}", n + 1
    taken.add(unique)
    return folder / unique


def history_figure(group: RunGroup, histories: Sequence[PairHistory]) -> Figure:
    """Two panels per pair, one above the other, sharing the runs on x."""
    rows = max(1, 2 * len(histories))
    figure = new_figure((WIDTH_IN, PANEL_HEIGHT_IN * rows + EXTRA_HEIGHT_IN))
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    if not histories:
        no_data(axes[0], "no pair in these runs")
    changes = 0
    for i, history in enumerate(histories):
        top, bottom = axes[2 * i], axes[2 * i + 1]
        _headline_panel(top, history)
        _latency_panel(bottom, history)
        for panel in (top, bottom):
            _runs_axis(panel, group.runs)
        changes += sum(len(s.detection.changes) for s in (history.headline, *history.latency))
    n = len(group.runs)
    title = f"history of {n} run{'s' if n != 1 else ''}: {changes} change point"
    title += "s" if changes != 1 else ""
    first, last = group.runs[0].run_id, group.runs[-1].run_id
    caption_text = f"runs {first} to {last} · {group.machine} · profile {group.profile}"
    return finish(figure, title, caption_text)


def write_history_figure(
    group: RunGroup, histories: Sequence[PairHistory], stem: Path
) -> list[Path]:
    """Draw and save the group's figure as PNG and SVG; the paths."""
    return save(history_figure(group, histories), stem)


def _headline_panel(axes: Axes, history: PairHistory) -> None:
    subject = "bystander " if history.subject == "bystander" else ""
    good = history.good or "–"
    axes.set_title(
        f"{history.title}: {history.bad} / {good} ({subject}{history.metric}) "
        f"at {history.knob_text}",
        loc="left",
        fontsize="medium",
    )
    _line(axes, history.headline, HEADLINE_COLOUR, f"{history.bad} / {good}")
    axes.set_ylabel("ratio, 95% CI")
    if _has_values(history.headline):
        plain_log_y(axes)
        axes.yaxis.set_major_formatter(RatioLogFormatter())
        axes.yaxis.set_minor_formatter(
            RatioLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4))
        )
    else:
        no_data(axes, "no comparable rounds in any run")
    _mark_changes(axes, [(history.headline, CHANGE_COLOUR)])


def _latency_panel(axes: Axes, history: PairHistory) -> None:
    colours = variant_colours(
        [{"name": s.name, "role": "good"} for s in history.latency]  # good variants only
    )
    subject = "bystander " if history.subject == "bystander" else ""
    for series in history.latency:
        _line(axes, series, colours[series.name], series.name)
    axes.set_ylabel(f"{subject}{history.metric} (ms), 95% CI")
    if any(_has_values(s) for s in history.latency):
        plain_log_y(axes)
        axes.legend(fontsize="small", loc="upper left")
    else:
        no_data(axes, "no good variant measured")
    _mark_changes(axes, [(s, colours[s.name]) for s in history.latency])


def _line(axes: Axes, series: Series, colour: str, label: str) -> None:
    x = list(range(len(series.points)))
    values = [math.nan if p.value is None else p.value for p in series.points]
    low = [math.nan if p.ci_low is None else p.ci_low for p in series.points]
    high = [math.nan if p.ci_high is None else p.ci_high for p in series.points]
    axes.plot(x, values, "-o", color=colour, label=label, markersize=4)
    axes.fill_between(x, low, high, color=colour, alpha=BAND_ALPHA, linewidth=0)


def _mark_changes(axes: Axes, coloured: Sequence[tuple[Series, str]]) -> None:
    """A dashed line before each change's first run, labelled with the step, stacked per x."""
    stacked: dict[int, int] = {}
    for series, colour in coloured:
        for change in series.detection.changes:
            x = change.index - 0.5
            axes.axvline(x, color=CHANGE_COLOUR, linestyle="--", linewidth=1)
            level = stacked.get(change.index, 0)
            stacked[change.index] = level + 1
            axes.annotate(
                percent(change.change),
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -10 - ANNOTATION_STEP_PT * level),
                textcoords="offset points",
                color=colour,
                fontsize="small",
                fontweight="bold",
            )


def _runs_axis(axes: Axes, runs: Sequence[StoredRun]) -> None:
    step = max(1, math.ceil(len(runs) / MAX_TICK_LABELS))
    ticks = list(range(0, len(runs), step))
    axes.set_xticks(ticks, [run_label(runs[i]) for i in ticks], rotation=45, ha="right")
    axes.set_xlim(-0.5, len(runs) - 0.5)
    axes.grid(True, which="both", alpha=0.3)


def _has_values(series: Series) -> bool:
    return any(p.value is not None for p in series.points)
