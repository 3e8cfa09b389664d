"""The mechanism beside the latency: each counter-derived figure against the knob, per variant.

One small panel each: the latency first, then whichever of queries per request, connections
opened, cache hit ratio, event-loop lag and errors the run has numbers for. The panels share
the knob axis, so a reader sees the latency and its cause move together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

from .figures import LOG_AXIS_SPAN, column, finish, knob_x_axis, log_if_wide, new_figure
from .findings import NO_DATA, best_good
from .formatting import fmt_number
from .knobs import knob_text
from .mechanism import Mechanism, shown
from .palette import variant_colours
from .stats import ratio_metric

PANEL_IN = (3.8, 3.6)  # width and height of one panel, inches
PERCENT = 100.0

Pair = Mapping[str, Any]
Analysis = Mapping[str, Any]


def mechanism_figure(pair: Pair, analysis: Analysis, caption_text: str) -> Figure | None:
    """Latency and every mechanism with data against the knob; None when there is none."""
    per_variant = analysis["per_variant"]
    mechanisms = shown([c for cells in per_variant.values() for c in cells.values()])
    if not mechanisms:
        return None
    figure = new_figure((PANEL_IN[0] * (1 + len(mechanisms)), PANEL_IN[1]))
    panels = figure.subplots(1, 1 + len(mechanisms), squeeze=False)[0]
    colours = variant_colours(pair["variants"])
    metric = ratio_metric(pair)
    fields = [(f"{metric}_ms", f"{metric} latency (ms)", 1.0)] + [
        (m.key, m.label, PERCENT if m.percent else 1.0) for m in mechanisms
    ]
    for axes, (field, label, scale) in zip(panels, fields, strict=True):
        for variant in pair["variants"]:
            name = variant["name"]
            keys = [k for k in per_variant if name in per_variant[k]]
            values = column([per_variant[k][name] for k in keys], field, scale)
            axes.plot([float(k) for k in keys], values, "-o", color=colours[name], label=name)
        knob_x_axis(axes, pair, list(per_variant))
        axes.set_title(label, fontsize="medium")
        # Latency spans decades between variants: log as soon as it spans one.
        log_if_wide(axes, 10.0 if field.endswith("_ms") else LOG_AXIS_SPAN)
    panels[0].legend(fontsize="small")
    return finish(figure, f"{pair['title']}: {mechanism_finding(pair, analysis)}", caption_text)


def mechanism_finding(pair: Pair, analysis: Analysis) -> str:
    """The mechanism that differs most between the bad and the best good variant, in words.

    E.g. `at n=100, queries per request 101 for lazy vs 1.00 for join`.
    """
    per_variant = analysis["per_variant"]
    keys = [k for k in per_variant if pair["bad"] in per_variant[k]]
    if not keys:
        return NO_DATA
    key = keys[-1]
    where = knob_text(pair, key)
    cells = per_variant[key]
    bad = pair["bad"]
    good = best_good(pair, analysis, key) or next(
        (name for name in reversed(list(cells)) if name != bad), None
    )
    candidates = shown([cells[bad], cells[good]]) if good is not None else []
    if good is None or not candidates:
        return f"at {where} no mechanism counters to compare"
    mechanism = max(candidates, key=lambda m: _contrast(cells[bad], cells[good], m))
    return (
        f"at {where}, {mechanism.short} {_value(cells[bad], mechanism)} for {bad} "
        f"vs {_value(cells[good], mechanism)} for {good}"
    )


def _contrast(bad: Mapping[str, Any], good: Mapping[str, Any], mechanism: Mechanism) -> float:
    """How far apart two cells are on one mechanism, as a factor (inf when one is zero)."""
    a, b = bad.get(mechanism.key), good.get(mechanism.key)
    if a is None or b is None:
        return 0.0
    low, high = sorted((abs(float(a)), abs(float(b))))
    if high == 0:
        return 1.0
    return math.inf if low == 0 else high / low


def _value(cell: Mapping[str, Any], mechanism: Mechanism) -> str:
    value = cell.get(mechanism.key)
    if value is None:
        return "–"
    if mechanism.percent:
        return f"{fmt_number(value * PERCENT)}%"
    return f"{fmt_number(value)}{mechanism.unit}"
