"""Figure scaffolding shared by every plot: canvas, title, caption line, saving.

Uses matplotlib's object API with the Agg canvas, never pyplot: no global backend switch, so a
notebook that imports this keeps its own display, and figures are not kept alive by a registry.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.ticker import LogFormatter, NullFormatter

from ..analysis.knobs import knob_axis_label

FORMATS = ("png", "svg")
FIGURE_DPI = 150
TITLE_WRAP_CHARS = 90
TITLE_CHARS_PER_INCH = 10  # a 12 pt title: about ten characters fit in an inch
CAPTION_FONT_SIZE = 8
CAPTION_COLOUR = "#616161"
CAPTION_XY = (0.01, 0.01)  # figure coordinates of the caption's lower left corner
CONTENT_RECT = (0.0, 0.04, 1.0, 0.96)  # left, bottom, width, height: above the caption
# The same file bytes for the same run: fixed SVG ids, no timestamps in the files.
SVG_HASH_SALT = "pairbench"
NO_DATE = {"png": {"Software": None}, "svg": {"Date": None}}
# A value axis goes logarithmic when its data spans this factor (two decades) or more.
LOG_AXIS_SPAN = 100.0


def caption(run: Mapping[str, Any], pair: Mapping[str, Any] | None = None) -> str:
    """The line under every figure: run id, machine and profile, and the emulated links the
    pair (or, for a figure of the whole run, any pair) was measured across, so no number is
    shown without its conditions (docs/run-format.md, `pairs.*.link`)."""
    machine = (run.get("metadata") or {}).get("machine") or {}
    cores = machine.get("cores")
    where = str(machine.get("cpu_model") or "unknown CPU") + (f", {cores} cores" if cores else "")
    text = f"run {run['run_id']} · {where} · profile {run['profile']}"
    links = link_descriptions(run, pair)
    return text + "".join(f" · {link}" for link in links)


def link_descriptions(run: Mapping[str, Any], pair: Mapping[str, Any] | None = None) -> list[str]:
    """The recorded links of `pair`, or of every pair of the run named by pair, as captions
    say them ("db link unlimited, RTT = the knob"); empty when none crossed a link."""
    if pair is not None:
        described = (pair.get("link") or {}).get("description")
        return [str(described)] if described else []
    found = []
    for name, each in (run.get("pairs") or {}).items():
        described = (each.get("link") or {}).get("description")
        if described:
            found.append(f"{name}: {described}")
    return found


def new_figure(size_in: tuple[float, float]) -> Figure:
    """An empty figure (size in inches) on an Agg canvas, laid out above the caption strip."""
    figure = Figure(figsize=size_in, layout=ConstrainedLayoutEngine(rect=CONTENT_RECT))
    FigureCanvasAgg(figure)
    return figure


def finish(figure: Figure, title: str, caption_text: str) -> Figure:
    """Add the finding as title (wrapped) and the caption line at the bottom."""
    # Wrap to the figure's width: a narrow two-panel figure would clip a 90-character line.
    width = min(TITLE_WRAP_CHARS, int(figure.get_figwidth() * TITLE_CHARS_PER_INCH))
    figure.suptitle(textwrap.fill(title, width))
    figure.text(*CAPTION_XY, caption_text, fontsize=CAPTION_FONT_SIZE, color=CAPTION_COLOUR)
    return figure


class PlainLogFormatter(LogFormatter):
    """LogFormatter's choice of which ticks to label, printed plainly: 0.1, 2, 500."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return f"{x:g}"


def plain_log_y(axes: Axes) -> None:
    """A log y axis labelled 0.1, 2, 10 rather than 1e-01 or 2 x 10^0: latencies read as ms."""
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(PlainLogFormatter())
    # Minor ticks get labels only when the axis spans too few decades to have major ones.
    axes.yaxis.set_minor_formatter(
        PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4))
    )


SYMLOG_LINEAR_DECADES = 0.5  # width of the linear part (0 to the first value), in decades


def knob_x_axis(axes: Axes, pair: Mapping[str, Any], keys: Sequence[str]) -> None:
    """The knob on x: labelled with its unit, log when the pair says so, ticks at the values."""
    axes.set_xlabel(knob_axis_label(pair))
    values = [float(k) for k in keys]
    if pair["knob"].get("log_scale") and values:  # log of nothing fails
        positive = [v for v in values if v > 0]
        if len(positive) < len(values) and positive:
            # A knob that starts at 0 (page depth 0): log would put 0 hundreds of decades to
            # the left and squeeze the sweep into a corner; symlog is linear up to the first
            # positive value, logarithmic after it.
            axes.set_xscale("symlog", linthresh=min(positive), linscale=SYMLOG_LINEAR_DECADES)
        elif positive:
            axes.set_xscale("log")
        axes.xaxis.set_minor_formatter(NullFormatter())
    # Tick the measured knob values themselves, not powers of ten.
    axes.set_xticks([float(k) for k in keys], list(keys))
    axes.grid(True, which="both", alpha=0.3)


def column(cells: Sequence[Mapping[str, Any]], field: str, scale: float = 1.0) -> list[float]:
    """One field of each cell, scaled; a missing value is a gap in the line (NaN), not a zero."""
    return [math.nan if c.get(field) is None else float(c[field]) * scale for c in cells]


def log_if_wide(axes: Axes, span: float) -> None:
    """A log y axis when the plotted values span `span` or more (and there are any)."""
    lines = axes.get_lines()
    if not lines:
        return
    values = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in lines])
    positive = values[values > 0]  # NaN gaps compare false and drop out too
    if positive.size and positive.max() / positive.min() >= span:
        plain_log_y(axes)


def no_data(axes: Axes, text: str) -> None:
    """Say so in the middle of an empty panel."""
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center")


def save(figure: Figure, stem: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Save a figure once per format, as `stem.<format>`; return the paths."""
    paths = []
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASH_SALT}):
        for extension in formats:
            path = stem.with_name(f"{stem.name}.{extension}")
            figure.savefig(path, dpi=FIGURE_DPI, metadata=NO_DATE.get(extension))
            paths.append(path)
    return paths
