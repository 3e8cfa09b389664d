"""Every figure of one pair, written next to run.json as PNG and SVG.

Drawing is most of the time a run spends after its last trial (docs/run-format.md, `render_s`):
each figure is laid out and rendered twice (PNG, SVG), all in Python. The figures are
independent, so where it is safe they are drawn at the same time in forked processes
(results/figures/workers.py), each writing its own files; the files are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from . import workers
from .bystander import bystander_figure
from .canvas import caption, save
from .mechanism import mechanism_figure
from .scaling import scaling_figure
from .spectrum import spectrum_figure
from .timeline import timeline_figure

Pair = Mapping[str, Any]
Analysis = Mapping[str, Any]

# In the order their files are listed. Each draws from (pair, analysis, largest knob key,
# caption); None when the run has nothing for it (no counters, no bystander).
FIGURES: dict[str, Callable[[Pair, Analysis, str | None, str], Figure | None]] = {
    "scaling": lambda pair, analysis, _, text: scaling_figure(pair, analysis, text),
    "spectrum": spectrum_figure,
    "mechanism": lambda pair, analysis, _, text: mechanism_figure(pair, analysis, text),
    "bystander": lambda pair, analysis, _, text: bystander_figure(pair, analysis, text),
    "timeline": lambda pair, _, __, text: timeline_figure(pair, text),
}


def plot_pair(
    name: str, pair: Pair, analysis: Analysis, run: Mapping[str, Any], folder: Path
) -> list[Path]:
    """Write every figure of a pair as PNG and SVG into folder; return the paths.

    Always `<name>-scaling`, `-spectrum`, `-timeline`; `-mechanism` when the run has server
    counters, `-bystander` when a bystander was loaded.
    """
    text = caption(run, pair)
    keys = list(analysis["per_variant"])
    largest = keys[-1] if keys else None
    jobs = [(kind, name, pair, analysis, largest, text, folder) for kind in FIGURES]
    return [path for paths in workers.map_in_order(_draw, jobs) for path in paths]


def _draw(
    kind: str,
    name: str,
    pair: Pair,
    analysis: Analysis,
    largest: str | None,
    text: str,
    folder: Path,
) -> list[Path]:
    """Draw one figure and write its files (none when the run has nothing for it)."""
    figure = FIGURES[kind](pair, analysis, largest, text)
    return [] if figure is None else save(figure, folder / f"{name}-{kind}")
