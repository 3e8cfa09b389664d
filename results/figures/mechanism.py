"""The mechanism beside the latency: each lesson counter against the knob, per variant.

One small panel each: the latency first, then the pair's lesson counters (headline first) that
have numbers, then the error ratio. The panels share the knob axis, so a reader sees the
latency and its cause move together. The title names the headline counter, bad against the
best good variant at the largest knob value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

from ..analysis.expectation import best_good
from ..analysis.findings import NO_DATA
from ..analysis.knobs import knob_text
from ..analysis.mechanism import Mechanism, counter_specs, shown
from ..analysis.stats import ratio_metric
from ..report.formatting import fmt_number
from .canvas import (
    LOG_AXIS_SPAN,
    finish,
    knob_x_axis,
    log_if_wide,
    new_figure,
)
from .palette import variant_colours

PANEL_IN = (3.8, 3.6)  # width and height of one panel, inches
LATENCY_LOG_SPAN = 10.0  # latency spans decades between variants: log as soon as it spans one
# A counter that differs by less than this between bad and good shows no gap: not a headline.
NO_GAP_BELOW = 1.1
MISSING_VALUE = "–"

Pair = Mapping[str, Any]
Analysis = Mapping[str, Any]


def mechanism_figure(pair: Pair, analysis: Analysis, caption_text: str) -> Figure | None:
    """Latency and every lesson counter with data against the knob; None when there is none."""
    per_variant = analysis["per_variant"]
    mechanisms = shown(pair, [c for cells in per_variant.values() for c in cells.values()])
    if not mechanisms:
        return None
    figure = new_figure((PANEL_IN[0] * (1 + len(mechanisms)), PANEL_IN[1]))
    panels = figure.subplots(1, 1 + len(mechanisms), squeeze=False)[0]
    colours = variant_colours(pair["variants"])
    metric = ratio_metric(pair)
    latency = Mechanism(f"{metric}_ms", f"{metric} latency", "ms", per_request=False)
    for axes, mechanism in zip(panels, [latency, *mechanisms], strict=True):
        for variant in pair["variants"]:
            name = variant["name"]
            keys = [k for k in per_variant if name in per_variant[k]]
            values = [_plotted(per_variant[k][name], mechanism) for k in keys]
            axes.plot([float(k) for k in keys], values, "-o", color=colours[name], label=name)
        knob_x_axis(axes, pair, list(per_variant))
        axes.set_title(mechanism.axis_label, fontsize="medium")
        log_if_wide(axes, LATENCY_LOG_SPAN if mechanism is latency else LOG_AXIS_SPAN)
    panels[0].legend(fontsize="small")
    return finish(figure, f"{pair['title']}: {mechanism_finding(pair, analysis)}", caption_text)


def mechanism_finding(pair: Pair, analysis: Analysis) -> str:
    """The headline counter, bad against the best good variant at the largest knob value.

    E.g. `201 SQL statements per request vs 2 (batched) at n=200`. The headline is the first
    lesson counter on which the two differ (the pair's own headline unless it shows no gap).
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
    candidates = shown(pair, [cells[bad], cells[good]]) if good is not None else []
    if good is None or not candidates:
        return f"at {where} no mechanism counters to compare"
    differing = [m for m in candidates if _contrast(cells[bad], cells[good], m) >= NO_GAP_BELOW]
    mechanism = (differing or candidates)[0]
    bad_value, good_value = mechanism.value(cells[bad]), mechanism.value(cells[good])
    exact = [_verified(pair, mechanism, name, key) for name in (bad, good)]
    if mechanism.per_request and None not in exact:
        # Under load a window's edges cut requests in two (195 statements per request where
        # one request sends 201); verification counted one request alone: the exact figure.
        bad_value, good_value = exact
    show = _exact_number if mechanism.per_request and None not in exact else fmt_number
    good_text = MISSING_VALUE if good_value is None else show(good_value) + mechanism.suffix
    return f"{mechanism.amount(bad_value, show(bad_value))} vs {good_text} ({good}) at {where}"


def _exact_number(value: float | None) -> str:
    """A counted figure as counted: 201, not 201.0 (a fraction, if any, as usual)."""
    if value is not None and float(value).is_integer():
        return f"{int(value):,}"
    return fmt_number(value)


def _verified(pair: Pair, mechanism: Mechanism, variant: str, key: str) -> float | None:
    """The counter's growth for one request of `variant` at knob `key`, as verification
    counted it (a request alone between two scrapes), in display units; None if unchecked."""
    for check in (pair.get("verification") or {}).get("checks") or []:
        value = check.get("value")
        if (
            check.get("name") == f"{mechanism.key}_per_request"
            and check.get("variant") == variant
            and check.get("knob") is not None
            and float(check["knob"]) == float(key)
            and check.get("passed")
            and isinstance(value, int | float)
        ):
            scale = float(counter_specs(pair).get(mechanism.key, {}).get("scale", 1))
            return float(value) * scale
    return None


def _plotted(cell: Mapping[str, Any], mechanism: Mechanism) -> float:
    """A cell's value for a line; a missing value is a gap (NaN), not a zero."""
    value = cell.get(mechanism.key) if mechanism.key.endswith("_ms") else mechanism.value(cell)
    return math.nan if value is None else float(value)


def _contrast(bad: Mapping[str, Any], good: Mapping[str, Any], mechanism: Mechanism) -> float:
    """How far apart two cells are on one mechanism, as a factor (inf when one is zero)."""
    a, b = mechanism.value(bad), mechanism.value(good)
    if a is None or b is None:
        return 0.0
    low, high = sorted((abs(a), abs(b)))
    if high == 0:
        return 1.0
    return math.inf if low == 0 else high / low
