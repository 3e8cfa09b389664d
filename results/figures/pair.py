"""Every figure of one pair, written next to run.json as PNG and SVG."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .bystander import bystander_figure
from .canvas import caption, save
from .mechanism import mechanism_figure
from .scaling import scaling_figure
from .spectrum import spectrum_figure
from .timeline import timeline_figure

Pair = Mapping[str, Any]


def plot_pair(
    name: str, pair: Pair, analysis: Mapping[str, Any], run: Mapping[str, Any], folder: Path
) -> list[Path]:
    """Write every figure of a pair as PNG and SVG into folder; return the paths.

    Always `<name>-scaling`, `-spectrum`, `-timeline`; `-mechanism` when the run has server
    counters, `-bystander` when a bystander was loaded.
    """
    text = caption(run)
    keys = list(analysis["per_variant"])
    largest = keys[-1] if keys else None
    figures = {
        "scaling": scaling_figure(pair, analysis, text),
        "spectrum": spectrum_figure(pair, analysis, largest, text),
        "mechanism": mechanism_figure(pair, analysis, text),
        "bystander": bystander_figure(pair, analysis, text),
        "timeline": timeline_figure(pair, text),
    }
    return [
        path
        for kind, figure in figures.items()
        if figure is not None
        for path in save(figure, folder / f"{name}-{kind}")
    ]
