"""The forest plot: the whole run on one slide, one row per pair at its expectation's knob value.

Each row is the bad / best good ratio with its 95% interval on a log axis; the line at 1x is
"no difference" and a grey tick marks the ratio the scenario claims (min_ratio).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..analysis.expectation import best_good
from ..analysis.knobs import expectation_knob_key, knob_text
from ..analysis.summary import Analyses
from ..report.formatting import fmt_ratio
from .canvas import finish, new_figure
from .palette import ROLE_COLOURS

ROW_IN = 0.7
BASE_HEIGHT_IN = 2.4
WIDTH_IN = 10.0
POINT_COLOUR = ROLE_COLOURS["good"][0]
CLAIM_COLOUR = "#9e9e9e"
X_MARGIN = 1.5  # room either side of the outermost interval, as a factor


class ForestRow(NamedTuple):
    """One pair at the knob value its expectation is judged at."""

    pair: str
    label: str  # e.g. "N+1 queries\nn=100: lazy / join (p50)"
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    claim: float | None  # the expectation's min_ratio


def forest_rows(run: Mapping[str, Any], analyses: Analyses) -> list[ForestRow]:
    """One row per pair, in run order; a pair without a comparable round has ratio None."""
    rows = []
    for name, pair in run["pairs"].items():
        analysis = analyses[name]
        key = expectation_knob_key(pair) or next(reversed(analysis["ratios"]), None)
        good = best_good(pair, analysis, key) if key is not None else None
        ratio = analysis["ratios"][key][good] if key is not None and good is not None else {}
        metric = ratio.get("metric", "")
        subject = "bystander " if ratio.get("subject") == "bystander" else ""
        where = knob_text(pair, key) if key is not None else "no knob value"
        label = f"{pair['title']}\n{where}: {pair['bad']} / {good or '–'} ({subject}{metric})"
        claim = (pair.get("expectation") or {}).get("min_ratio")
        rows.append(
            ForestRow(
                pair=name,
                label=label,
                ratio=ratio.get("bad_over_good"),
                ci_low=ratio.get("ci_low"),
                ci_high=ratio.get("ci_high"),
                claim=claim,
            )
        )
    return rows


def forest_finding(rows: list[ForestRow]) -> str:
    """E.g. `2 of 2 pairs: the fix is faster beyond doubt; largest gap CPU 390x`."""
    measured = [r for r in rows if r.ratio is not None]
    if not measured:
        return "no pair has comparable rounds"
    faster = sum(1 for r in measured if r.ci_low is not None and r.ci_low > 1.0)
    largest = max(measured, key=lambda r: r.ratio or 0.0)
    title = largest.label.split("\n")[0]
    return (
        f"the fix is faster (95% CI above 1x) in {faster} of {len(rows)} pairs; "
        f"largest gap: {title} {fmt_ratio(largest.ratio)}"
    )


def forest_figure(run: Mapping[str, Any], analyses: Analyses, caption_text: str) -> Figure:
    """Ratio and interval per pair on a log x axis, with the 1x line and the claimed ratio."""
    rows = forest_rows(run, analyses)
    figure = new_figure((WIDTH_IN, BASE_HEIGHT_IN + ROW_IN * len(rows)))
    axes = figure.subplots()
    y = list(range(len(rows)))[::-1]  # first pair on top
    values = [1.0]
    for yi, row in zip(y, rows, strict=True):
        if row.ratio is None:
            axes.text(1.0, yi, "  no comparable rounds", va="center", fontsize="small")
            continue
        low = row.ci_low if row.ci_low is not None else row.ratio
        high = row.ci_high if row.ci_high is not None else row.ratio
        axes.plot([low, high], [yi, yi], "-", color=POINT_COLOUR, linewidth=2)
        axes.plot([row.ratio], [yi], "o", color=POINT_COLOUR)
        label = fmt_ratio(row.ratio)
        axes.annotate(label, (row.ratio, yi), (0, 7), textcoords="offset points", ha="center")
        values += [low, high]
        if row.claim:
            axes.plot([row.claim], [yi], "|", color=CLAIM_COLOUR, markersize=14)
            values.append(row.claim)
    axes.axvline(1.0, color="black", linewidth=0.8)
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}x"))
    axes.set_xlim(min(values) / X_MARGIN, max(values) * X_MARGIN)
    axes.set_yticks(y, [r.label for r in rows])
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.set_xlabel(
        "bad / best good variant, 95% CI (log scale; > 1x: the fix is faster; grey |: the claim)"
    )
    axes.grid(True, axis="x", which="both", alpha=0.3)
    return finish(figure, f"pairbench: {forest_finding(rows)}", caption_text)
