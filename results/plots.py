"""Figures of a pair: the scaling curve over the knob, the latency percentile spectrum, and
`plot_pair`, which draws every figure of a pair."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from . import histograms
from .bystander_plot import bystander_figure
from .figures import (
    LOG_AXIS_SPAN,
    caption,
    column,
    finish,
    knob_x_axis,
    log_if_wide,
    new_figure,
    no_data,
    plain_log_y,
    save,
)
from .findings import NO_DATA, scaling_finding, spectrum_finding
from .mechanism_plot import mechanism_figure
from .palette import P50_STYLE, P99_STYLE, variant_colours
from .stats import merged_histograms
from .timeline_plot import timeline_figure

SCALING_SIZE_IN = (12.0, 5.0)
SPECTRUM_SIZE_IN = (8.0, 5.5)
# The spectrum's x ticks: 1 / (1 - p) = 10^k is the percentile with k nines.
SPECTRUM_TICKS = {1.0: "0%", 10.0: "90%", 100.0: "99%", 1e3: "99.9%", 1e4: "99.99%", 1e5: "99.999%"}

Pair = Mapping[str, Any]


def scaling_figure(pair: Pair, analysis: Mapping[str, Any], caption_text: str) -> Figure:
    """p50 and p99 latency, and throughput, against the knob, one line per variant."""
    figure = new_figure(SCALING_SIZE_IN)
    latency, throughput = figure.subplots(1, 2)
    colours = variant_colours(pair["variants"])
    per_variant = analysis["per_variant"]
    for variant in pair["variants"]:
        name = variant["name"]
        keys = [k for k in per_variant if name in per_variant[k]]
        cells = [per_variant[k][name] for k in keys]
        x = [float(k) for k in keys]
        style = {"color": colours[name], "marker": "o"}
        latency.plot(x, column(cells, "p50_ms"), P50_STYLE, label=name, **style)
        latency.plot(x, column(cells, "p99_ms"), P99_STYLE, **style)
        throughput.plot(x, column(cells, "rps"), P50_STYLE, label=name, **style)
    for axes, unit in ((latency, "latency (ms)"), (throughput, "throughput (req/s)")):
        knob_x_axis(axes, pair, list(per_variant))
        axes.set_ylabel(unit)
    log_if_wide(latency, 1.0)  # latencies span decades between variants: always log
    log_if_wide(throughput, LOG_AXIS_SPAN)
    latency.set_title("latency: p50 solid, p99 dashed")
    throughput.set_title("throughput")
    styles = [
        Line2D([], [], color="black", linestyle=P50_STYLE),
        Line2D([], [], color="black", linestyle=P99_STYLE),
    ]
    handles, labels = latency.get_legend_handles_labels()
    latency.legend([*handles, *styles], [*labels, "p50", "p99"], fontsize="small")
    if not per_variant:
        no_data(latency, NO_DATA)
    title = f"{pair['title']}: {scaling_finding(pair, analysis)}"
    return finish(figure, title, caption_text)


def spectrum_figure(
    pair: Pair, analysis: Mapping[str, Any], key: str | None, caption_text: str
) -> Figure:
    """Latency by percentile at one knob key, HdrHistogram style (x in nines)."""
    figure = new_figure(SPECTRUM_SIZE_IN)
    axes = figure.subplots()
    colours = variant_colours(pair["variants"])
    merged = merged_histograms(pair, key) if key is not None else {}
    x_max = 1.0
    for name, histogram in merged.items():
        x, y = histograms.spectrum_ms(histogram)
        if not x:
            continue
        x_max = max(x_max, x[-1])
        count = histogram.get_total_count()
        axes.plot(x, y, color=colours[name], label=f"{name} ({count:,} requests)")
    if x_max > 1.0:
        axes.set_xscale("log")
        plain_log_y(axes)
        axes.set_xlim(1.0, x_max)
        ticks = [t for t in SPECTRUM_TICKS if t <= x_max]
        axes.set_xticks(ticks, [SPECTRUM_TICKS[t] for t in ticks])
        axes.legend(fontsize="small")
    else:
        no_data(axes, NO_DATA)
    axes.set_xlabel("percentile (log scale of 1 / (1 - p))")
    axes.set_ylabel("latency (ms)")
    axes.grid(True, which="both", alpha=0.3)
    finding = spectrum_finding(pair, analysis, key) if key is not None else NO_DATA
    return finish(figure, f"{pair['title']}: {finding}", caption_text)


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
