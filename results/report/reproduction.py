"""A reproduced run (`pairbench run --from BASE`) beside the run it reproduces, in its report."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..gate.compare import compare
from ..io.runfile import RunFileError, load_run
from .document import Block, Heading, Table, Text
from .formatting import fmt_interval, fmt_number, fmt_ratio

SIDE_BY_SIDE_METRICS = ("p50", "p99", "throughput")


def reproduction_blocks(run: Mapping[str, Any], folder: Path) -> list[Block]:
    """A section comparing this run with the one it reproduces, when that one is beside it."""
    base_id = run.get("reproduces")
    if not base_id:
        return []
    heading = Heading(f"Reproduction of run `{base_id}`", 2)
    try:
        base = load_run(folder.parent / str(base_id))
    except RunFileError:
        return [heading, Text(f"Run `{base_id}` is not in {folder.parent}: no side-by-side table.")]
    rows = [
        (
            c.pair,
            c.variant,
            c.knob,
            c.metric,
            fmt_number(c.base),
            fmt_number(c.new),
            fmt_ratio(c.ratio),
            fmt_interval(c.ci_low, c.ci_high),
            c.verdict,
        )
        for c in compare(base, run)
        if c.metric in SIDE_BY_SIDE_METRICS
    ]
    headers = [
        "pair",
        "variant",
        "knob",
        "metric",
        "original",
        "this run",
        "this / original",
        "95% CI",
        "verdict",
    ]
    return [
        heading,
        Text("Same pairs, scenarios, dataset and seed; latencies in ms, throughput in req/s."),
        Table(headers, rows, numeric_from=4, empty="Nothing in common to compare."),
    ]
