"""`pairbench history`: a pair's headline and its fixes' latency over many stored runs, with
change points (docs/architecture.md, History).

The series and change points are computed in the results package (results/history/); this
module loads the runs, prints a table per group and pair, and writes the figures and
history.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from pairbench.errors import UsageError
from pairbench.results.history.changes import INSTALL_HINT, otava_available
from pairbench.results.history.document import history_document, write_history
from pairbench.results.history.figure import figure_stem, percent, write_history_figure
from pairbench.results.history.runs import (
    RunGroup,
    find_run_files,
    group_runs,
    load_runs,
)
from pairbench.results.history.series import (
    HEADLINE,
    PairHistory,
    group_histories,
    pair_names,
)
from pairbench.results.io.runfile import RunFileError
from pairbench.results.report.formatting import MISSING, fmt_number

from .compare import _console
from .main import main
from .preflight import output_folder

DEFAULT_HISTORY_OUT = Path("runs") / "history"
UP, DOWN = "▲", "▼"


@main.command("history")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=DEFAULT_HISTORY_OUT,
    show_default=True,
    help="folder for the figures and history.json",
)
@click.option(
    "--pair",
    "pairs",
    multiple=True,
    help="only this pair (repeatable); default: every pair in the runs",
)
def history_cmd(runs: Sequence[Path], out: Path, pairs: Sequence[str]) -> None:
    """Headline ratio and good variants' latency over RUNS (run folders or folders of them),
    per machine and profile, with change points."""
    output_folder(out, "--out")
    try:
        stored = load_runs(find_run_files(runs))
    except RunFileError as error:
        raise UsageError(str(error)) from error
    groups = group_runs(stored)
    known = {name for group in groups for name in pair_names(group)}
    unknown = [name for name in pairs if name not in known]
    if unknown:
        raise UsageError(
            f"--pair {', '.join(unknown)}: not in these runs (they have {', '.join(sorted(known))})"
        )
    console = _console()
    console.print(
        f"{len(stored)} run{'s' if len(stored) != 1 else ''} in {len(groups)} group"
        f"{'s' if len(groups) != 1 else ''} (machine, profile):"
    )
    for group in groups:
        console.print(f"  {group.name}: {len(group.runs)} runs")
    if not otava_available():
        console.print(f"[yellow]{escape(INSTALL_HINT)}[/]")
    out.mkdir(parents=True, exist_ok=True)
    computed: list[tuple[RunGroup, list[PairHistory]]] = []
    figures: list[list[Path]] = []
    taken: set[str] = set()
    for group in groups:
        histories = group_histories(group, pairs or None)
        computed.append((group, histories))
        for history in histories:
            console.print(history_table(group, history))
            for note in _notes(history):
                console.print(note)
        figures.append(write_history_figure(group, histories, figure_stem(group, out, taken)))
    written = [path for paths in figures for path in paths]
    written.append(write_history(history_document(computed, figures), out))
    for path in written:
        console.print(f"  {path}")


def history_table(group: RunGroup, history: PairHistory) -> Table:
    """One row per run: when, which commit, the headline with its interval, and the changes
    that start there."""
    subject = "bystander " if history.subject == "bystander" else ""
    table = Table(
        title=(
            f"{history.pair}: {history.bad} / {history.good or '–'} ({subject}{history.metric}) "
            f"at {history.knob_text} · {group.name}"
        ),
        title_justify="left",
    )
    table.add_column("run")
    table.add_column("started (UTC)")
    table.add_column("commit")
    dated = any(stored.commit_date for stored in group.runs)
    if dated:
        table.add_column("committed")
    table.add_column("ratio [95% CI]", justify="right")
    table.add_column("change point")
    for index, (stored, point) in enumerate(zip(group.runs, history.headline.points, strict=True)):
        ratio = MISSING if point.value is None else f"{fmt_number(point.value)}x"
        if point.ci_low is not None and point.ci_high is not None:
            ratio += f" [{fmt_number(point.ci_low)}, {fmt_number(point.ci_high)}]"
        cells = [
            stored.run_id,
            stored.started_at.strftime("%Y-%m-%d %H:%M"),
            stored.short_commit() or "–",
        ]
        if dated:
            cells.append((stored.commit_date or "–")[:10])
        table.add_row(*cells, ratio, _changes_text(history, index))
    return table


def _changes_text(history: PairHistory, index: int) -> str:
    """e.g. `▼ ratio -32%, ▲ join +48%` for the changes that start at this run."""
    marks = []
    for name, change in history.changes_at(index):
        arrow, style = (UP, "red") if change > 0 else (DOWN, "green")
        if name == HEADLINE:
            # A larger ratio is a larger gap between bad and good: neither good nor bad news.
            marks.append(f"[bold]{arrow} ratio {percent(change)}[/]")
        else:
            # A good variant's latency going up is a regression.
            marks.append(f"[{style}]{arrow} {name} {percent(change)}[/]")
    return ", ".join(marks)


def _notes(history: PairHistory) -> list[str]:
    """Why a series has no change points, once per reason (the missing-Otava line is printed
    once for the whole command)."""
    reasons: dict[str, list[str]] = {}
    for series in (history.headline, *history.latency):
        note = series.detection.note
        if note is not None and note != INSTALL_HINT:
            name = "ratio" if series.name == HEADLINE else series.name
            reasons.setdefault(note, []).append(name)
    return [f"{history.pair}: no change points for {', '.join(n)}: {r}" for r, n in reasons.items()]
