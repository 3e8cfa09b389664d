"""The scaling curve: p50 and p99 latency, and throughput, against the knob, per variant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..analysis.findings import NO_DATA, scaling_finding
from .canvas import (
    LOG_AXIS_SPAN,
    column,
    finish,
    knob_x_axis,
    log_if_wide,
    new_figure,
    no_data,
)
from .palette import P50_STYLE, P99_STYLE, variant_colours

SCALING_SIZE_IN = (12.0, 5.0)

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
