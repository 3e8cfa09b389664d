"""Re-render a stored run: figures and report.md, from run.json alone (nothing is run)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import markdown
from .atomicfile import write_text_atomic
from .formatting import fmt_interval, fmt_p, fmt_ratio
from .pair_report import pair_section
from .plots import plot_pair
from .runfile import load_run, run_file_path
from .summary import Analyses, SummaryRow, analyse_run, summary_lines

__all__ = ["REPORT_FILE", "SummaryRow", "render", "report_markdown", "summary_lines"]

REPORT_FILE = "report.md"


def render(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Draw every pair's figures and write report.md next to run.json; return the files written.

    run.json itself is read only: the analysis is recomputed here, never written back.
    """
    run = load_run(run_dir)
    folder = run_file_path(run_dir).parent
    analyses = analyse_run(run)
    images = {
        name: plot_pair(name, pair, analyses[name], run, folder)
        for name, pair in run["pairs"].items()
    }
    report = write_text_atomic(folder / REPORT_FILE, report_markdown(run, analyses, images))
    return [*(path for paths in images.values() for path in paths), report]


def report_markdown(
    run: Mapping[str, Any], analyses: Analyses, images: Mapping[str, Sequence[Path]]
) -> str:
    """The whole report: run header, summary table, then one section per pair."""
    parts = [
        f"# pairbench run `{run['run_id']}`",
        _header(run),
        "## Summary",
        summary_table(summary_lines(run, analyses)),
        *(
            pair_section(name, pair, analyses[name], images.get(name, []))
            for name, pair in run["pairs"].items()
        ),
    ]
    return "\n\n".join(parts) + "\n"


def summary_table(rows: Sequence[SummaryRow]) -> str:
    """Each pair's ratio bad / best good variant per knob value."""
    if not rows:
        return "No valid data."
    body = [
        (
            row.pair,
            row.knob,
            f"{row.bad} / {row.good or '–'}",
            fmt_ratio(row.ratio),
            fmt_interval(row.ci_low, row.ci_high),
            fmt_p(row.p_value),
        )
        for row in rows
    ]
    return markdown.table(
        ["pair", "knob", "bad / best good", "median", "95% CI", "p"], body, numeric_from=3
    )


def _header(run: Mapping[str, Any]) -> str:
    metadata = run.get("metadata") or {}
    machine = metadata.get("machine") or {}
    postgres = metadata.get("postgres") or {}
    lines = [
        f"Status: {run['status']} · profile {run['profile']} · seed {run['seed']}",
        f"Started {run['started_at']}, finished {run.get('finished_at') or 'not finished'}",
        f"Machine: {machine.get('cpu_model', 'unknown CPU')}, {machine.get('cores', '?')} cores, "
        f"{machine.get('platform', 'unknown platform')}",
        f"PostgreSQL {postgres.get('version', '?')} ({postgres.get('source', '?')}); "
        f"pairbench {metadata.get('pairbench_version', '?')}, Python {metadata.get('python', '?')}",
        f"Command: `{' '.join(run.get('command', []))}`",
    ]
    return "\n".join(f"- {line}" for line in lines)
