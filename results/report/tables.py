"""The report's tables as data (headers and rows), for Markdown and HTML alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..analysis.bystander import bystander_name, has_bystander
from ..analysis.knobs import knob_text
from ..analysis.mechanism import shown
from ..analysis.summary import SummaryRow
from .document import Table
from .formatting import MISSING, fmt_interval, fmt_number, fmt_p, fmt_ratio

Pair = Mapping[str, Any]
Analysis = Mapping[str, Any]


def measurements(pair: Pair, analysis: Analysis) -> Table:
    """Knob value x variant: p50 (and TTFB p50 when recorded), p99, throughput, requests, rounds."""
    cells = _cells(analysis)
    # Time to first byte beside the full latency: how much of it is the server's work before
    # the first byte, how much the body. Only runs whose load generator recorded it.
    ttfb = any(cell.get("ttfb_p50_ms") is not None for _, _, cell in cells)
    rows = [
        (
            knob_text(pair, key),
            variant,
            fmt_number(cell["p50_ms"]),
            *([fmt_number(cell.get("ttfb_p50_ms"))] if ttfb else []),
            fmt_number(cell["p99_ms"]),
            fmt_number(cell["rps"]),
            f"{cell['count']:,}",
            cell["rounds"],
        )
        for key, variant, cell in cells
    ]
    headers = ["knob", "variant", "p50 (ms)", *(["TTFB p50 (ms)"] if ttfb else [])]
    headers += ["p99 (ms)", "req/s", "requests", "rounds"]
    return Table(headers, rows, numeric_from=2, empty="No valid data.")


def mechanism(pair: Pair, analysis: Analysis) -> Table | None:
    """Knob value x variant: every mechanism figure with data; None when there is none."""
    cells = list(_cells(analysis))
    columns = shown(pair, [cell for _, _, cell in cells])
    if not columns:
        return None
    rows = [
        (knob_text(pair, key), variant, *(fmt_number(m.value(cell)) for m in columns))
        for key, variant, cell in cells
    ]
    return Table(["knob", "variant", *(m.axis_label for m in columns)], rows, numeric_from=2)


def bystander(pair: Pair, analysis: Analysis) -> Table | None:
    """Knob value x variant: the bystander's p50, p99, requests and errors; None without one."""
    if not has_bystander(analysis):
        return None
    name = bystander_name(pair)
    rows = [
        (
            knob_text(pair, key),
            variant,
            fmt_number(cell["bystander"]["p50_ms"]),
            fmt_number(cell["bystander"]["p99_ms"]),
            f"{cell['bystander']['count']:,}",
            f"{cell['bystander']['errors']:,}",
        )
        for key, variant, cell in _cells(analysis)
        if cell.get("bystander")
    ]
    headers = ["knob", "under variant", f"{name} p50 (ms)", f"{name} p99 (ms)", "requests"]
    return Table([*headers, "errors"], rows, numeric_from=2)


def statuses(pair: Pair, analysis: Analysis) -> Table | None:
    """Knob value x variant: each HTTP status's share of the replies, where the load generator
    counted them (a step that accepts several, such as a rate-limited client's 200 and 429);
    None when no cell has them."""
    cells = [(k, v, c) for k, v, c in _cells(analysis) if c.get("statuses")]
    if not cells:
        return None
    codes = sorted({code for _, _, cell in cells for code in cell["statuses"]}, key=int)
    rows = []
    for key, variant, cell in cells:
        total = sum(cell["statuses"].values())
        shares = [f"{100 * cell['statuses'].get(code, 0) / total:.1f}" for code in codes]
        rows.append((knob_text(pair, key), variant, *shares, f"{total:,}"))
    headers = ["knob", "variant", *(f"{code} (%)" for code in codes), "replies"]
    return Table(headers, rows, numeric_from=2)


def ratios(pair: Pair, analysis: Analysis) -> Table:
    """Knob value x other variant: median ratio, 95% CI, Mann-Whitney p, rounds."""
    rows = [
        (
            knob_text(pair, key),
            f"{pair['bad']} / {variant}",
            ("bystander " if ratio.get("subject") == "bystander" else "") + ratio["metric"],
            fmt_ratio(ratio["bad_over_good"]),
            fmt_interval(ratio["ci_low"], ratio["ci_high"]),
            fmt_p(ratio["p_value"]),
            ratio["rounds"],
        )
        for key, at_knob in analysis["ratios"].items()
        for variant, ratio in at_knob.items()
    ]
    headers = ["knob", "bad / other", "metric", "median", "95% CI", "p", "rounds"]
    return Table(headers, rows, numeric_from=3, empty="No paired rounds.")


def summary(rows: Sequence[SummaryRow]) -> Table:
    """Each pair's ratio bad / best good variant per knob value."""
    body = [
        (
            row.pair,
            row.knob,
            f"{row.bad} / {row.good or MISSING}",
            fmt_ratio(row.ratio),
            fmt_interval(row.ci_low, row.ci_high),
            fmt_p(row.p_value),
        )
        for row in rows
    ]
    headers = ["pair", "knob", "bad / best good", "median", "95% CI", "p"]
    return Table(headers, body, numeric_from=3, empty="No valid data.")


def _cells(analysis: Analysis) -> list[tuple[str, str, Mapping[str, Any]]]:
    return [
        (key, variant, cell)
        for key, cells in analysis["per_variant"].items()
        for variant, cell in cells.items()
    ]
