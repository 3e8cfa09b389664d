"""The bystander's latency against the knob: the damage a variant does to everything else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..analysis.bystander import bystander_name, has_bystander
from ..analysis.findings import bystander_finding
from .canvas import column, finish, knob_x_axis, log_if_wide, new_figure
from .palette import P50_STYLE, P99_STYLE, variant_colours

SIZE_IN = (8.0, 5.0)
LOG_SPAN = 10.0
TAIL = "p99_ms"

Pair = Mapping[str, Any]
Analysis = Mapping[str, Any]


def bystander_figure(pair: Pair, analysis: Analysis, caption_text: str) -> Figure | None:
    """p99 (dashed) and p50 (solid) of the bystander per variant; None without a bystander."""
    if not has_bystander(analysis):
        return None
    per_variant = analysis["per_variant"]
    figure = new_figure(SIZE_IN)
    axes = figure.subplots()
    colours = variant_colours(pair["variants"])
    for variant in pair["variants"]:
        name = variant["name"]
        keys = [k for k in per_variant if (per_variant[k].get(name) or {}).get("bystander")]
        cells = [per_variant[k][name]["bystander"] for k in keys]
        x = [float(k) for k in keys]
        axes.plot(x, column(cells, TAIL), P99_STYLE, marker="o", color=colours[name], label=name)
        axes.plot(x, column(cells, "p50_ms"), P50_STYLE, marker=".", color=colours[name])
    knob_x_axis(axes, pair, list(per_variant))
    axes.set_ylabel(f"{bystander_name(pair)} latency (ms)")
    log_if_wide(axes, LOG_SPAN)
    styles = [Line2D([], [], color="black", linestyle=s) for s in (P99_STYLE, P50_STYLE)]
    handles, labels = axes.get_legend_handles_labels()
    axes.legend([*handles, *styles], [*labels, "p99", "p50"], fontsize="small")
    return finish(figure, f"{pair['title']}: {bystander_finding(pair, analysis)}", caption_text)
