"""Re-render a stored run: figures, report.md and report.html, from run.json alone.

Nothing is run and run.json is never rewritten: the analysis is recomputed here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pairbench.atomicfile import write_text_atomic

from ..analysis.findings import reference_standing
from ..analysis.summary import Analyses, SummaryRow, analyse_run, summary_lines
from ..figures.canvas import caption, save
from ..figures.forest import forest_figure
from ..figures.pair import plot_pair
from ..io.runfile import load_run, run_file_path
from . import html as htmldoc
from . import markdown, tables
from .document import Block, Bullets, Figures, Heading, Text
from .micro import micro_blocks
from .pair import pair_blocks
from .reproduction import reproduction_blocks

__all__ = [
    "FOREST_STEM",
    "HTML_FILE",
    "REPORT_FILE",
    "SummaryRow",
    "render",
    "report_blocks",
    "report_html",
    "report_markdown",
    "summary_lines",
]

REPORT_FILE = "report.md"
HTML_FILE = "report.html"
FOREST_STEM = "forest"


def render(
    run_dir: str | os.PathLike[str], micro: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Draw every figure and write report.md and report.html next to run.json.

    `micro`: a micro suite's storage folder or saved file; the report then sets the micro
    result for the run's commit and machine beside the end-to-end ratios (or says there is
    none). Returns the files written: each pair's figures, the run's forest plot, the reports.
    """
    run = load_run(run_dir)
    folder = run_file_path(run_dir).parent
    analyses = analyse_run(run)
    images = {
        name: plot_pair(name, pair, analyses[name], run, folder)
        for name, pair in run["pairs"].items()
    }
    forest = save(forest_figure(run, analyses, caption(run)), folder / FOREST_STEM)
    # Right after the summary: how this run compares with the one it replays.
    after = reproduction_blocks(run, folder)
    if micro is not None:
        after += micro_blocks(run, analyses, micro)
    blocks = report_blocks(run, analyses, images, forest, after)
    written = [
        write_text_atomic(folder / REPORT_FILE, markdown.render(blocks)),
        write_text_atomic(folder / HTML_FILE, htmldoc.render(_title(run), blocks)),
    ]
    return [*(path for paths in images.values() for path in paths), *forest, *written]


def report_blocks(
    run: Mapping[str, Any],
    analyses: Analyses,
    images: Mapping[str, Sequence[Path]],
    forest: Sequence[Path] = (),
    after_summary: Sequence[Block] = (),
) -> list[Block]:
    """The whole report: run header, summary table and forest plot, where our numbers stand
    against published ones, `after_summary`, then one section per pair."""
    blocks: list[Block] = [
        Heading(_title(run, code=True), 1),
        Bullets(_header(run)),
        Heading("Summary", 2),
        tables.summary(summary_lines(run, analyses)),
    ]
    if forest:
        blocks.append(Figures(forest))
    standings = [
        line
        for name, pair in run["pairs"].items()
        if (line := reference_standing(name, pair, analyses[name])) is not None
    ]
    if standings:
        # The README-like summary: where each number stands against the one people quote.
        blocks += [Text("Against the published figures:"), Bullets(standings)]
    blocks += after_summary
    for name, pair in run["pairs"].items():
        blocks += pair_blocks(name, pair, analyses[name], images.get(name, []))
    return blocks


def report_markdown(
    run: Mapping[str, Any], analyses: Analyses, images: Mapping[str, Sequence[Path]]
) -> str:
    """report.md's text (figures linked by file name)."""
    return markdown.render(report_blocks(run, analyses, images))


def report_html(
    run: Mapping[str, Any], analyses: Analyses, images: Mapping[str, Sequence[Path]]
) -> str:
    """report.html's text, the PNG figures embedded."""
    return htmldoc.render(_title(run), report_blocks(run, analyses, images))


def _title(run: Mapping[str, Any], code: bool = False) -> str:
    run_id = f"`{run['run_id']}`" if code else run["run_id"]
    return f"pairbench run {run_id}"


def _header(run: Mapping[str, Any]) -> list[str]:
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
    if run.get("reproduces"):
        lines.append(f"Reproduces run `{run['reproduces']}`")
    return lines
