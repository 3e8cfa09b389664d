"""The bystander: a cheap endpoint loaded alongside a variant, whose latency shows the damage
the variant does to everything else the server handles (a cheap ping beside CPU-bound work, say)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..io import histograms
from .rounds import BYSTANDER, Trial, merged, subject_record

DEFAULT_NAME = "the bystander"


def bystander_summary(trials: Sequence[Trial]) -> dict[str, Any] | None:
    """count, errors, p50/p90/p99 (ms) of the bystander over these trials; None if never loaded."""
    records = [r for r in (subject_record(t, BYSTANDER) for t in trials) if r is not None]
    if not records:
        return None
    histogram = merged(trials, BYSTANDER)
    summary = histograms.summary_ms(histogram)
    return {
        "count": int(histogram.get_total_count()),
        "errors": sum(int(r["errors"]) for r in records),
        "p50_ms": summary["p50_ms"],
        "p90_ms": summary["p90_ms"],
        "p99_ms": summary["p99_ms"],
    }


def has_bystander(analysis: Mapping[str, Any]) -> bool:
    """Whether any cell of an analysis measured a bystander."""
    return any(
        cell.get("bystander")
        for cells in analysis["per_variant"].values()
        for cell in cells.values()
    )


def bystander_name(pair: Mapping[str, Any]) -> str:
    """The bystander's request path when the stored scenario names it, e.g. `/work/ping`."""
    scenario = pair.get("scenario") or {}
    bystander = scenario.get("bystander") if isinstance(scenario, Mapping) else None
    request = bystander.get("request") if isinstance(bystander, Mapping) else None
    return str(request) if request else DEFAULT_NAME
