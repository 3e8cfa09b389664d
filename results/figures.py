"""Figure scaffolding shared by every plot: canvas, title, caption line, saving.

Uses matplotlib's object API with the Agg canvas, never pyplot: no global backend switch, so a
notebook that imports this keeps its own display, and figures are not kept alive by a registry.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.ticker import LogFormatter

FORMATS = ("png", "svg")
FIGURE_DPI = 150
TITLE_WRAP_CHARS = 90
CAPTION_FONT_SIZE = 8
CAPTION_COLOUR = "#616161"
CAPTION_XY = (0.01, 0.01)  # figure coordinates of the caption's lower left corner
CONTENT_RECT = (0.0, 0.04, 1.0, 0.96)  # left, bottom, width, height: above the caption
# The same file bytes for the same run: fixed SVG ids, no timestamps in the files.
SVG_HASH_SALT = "pairbench"
NO_DATE = {"png": {"Software": None}, "svg": {"Date": None}}


def caption(run: Mapping[str, Any]) -> str:
    """The line under every figure: run id, machine and profile."""
    machine = (run.get("metadata") or {}).get("machine") or {}
    cores = machine.get("cores")
    where = str(machine.get("cpu_model") or "unknown CPU") + (f", {cores} cores" if cores else "")
    return f"run {run['run_id']} · {where} · profile {run['profile']}"


def new_figure(size_in: tuple[float, float]) -> Figure:
    """An empty figure (size in inches) on an Agg canvas, laid out above the caption strip."""
    figure = Figure(figsize=size_in, layout=ConstrainedLayoutEngine(rect=CONTENT_RECT))
    FigureCanvasAgg(figure)
    return figure


def finish(figure: Figure, title: str, caption_text: str) -> Figure:
    """Add the finding as title (wrapped) and the caption line at the bottom."""
    figure.suptitle(textwrap.fill(title, TITLE_WRAP_CHARS))
    figure.text(*CAPTION_XY, caption_text, fontsize=CAPTION_FONT_SIZE, color=CAPTION_COLOUR)
    return figure


def plain_log_y(axes: Axes) -> None:
    """A log y axis labelled 2, 5, 10 rather than 2 x 10^0: latencies read as plain ms."""
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(LogFormatter())
    # Minor ticks get labels only when the axis spans too few decades to have major ones.
    axes.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def save(figure: Figure, stem: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Save a figure once per format, as `stem.<format>`; return the paths."""
    paths = []
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASH_SALT}):
        for extension in formats:
            path = stem.with_name(f"{stem.name}.{extension}")
            figure.savefig(path, dpi=FIGURE_DPI, metadata=NO_DATE.get(extension))
            paths.append(path)
    return paths
