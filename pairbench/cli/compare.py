"""`pairbench compare` and `pairbench gate`: a run against a stored baseline.

The statistics live in the results package (pure functions over stored runs); this module only
loads the runs, prints, writes the gate's files and maps the verdict to an exit code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from pairbench.errors import EXIT_FAILED, EXIT_UNTRUSTED, PairbenchError, UsageError
from pairbench.results.gate.compare import ALPHA, FASTER, SLOWER, Comparison, compare
from pairbench.results.gate.gate import MIN_EFFECT, GateResult, gate
from pairbench.results.gate.report import write_gate_files
from pairbench.results.io.runfile import RunFileError, load_run, run_file_path
from pairbench.results.report.formatting import fmt_factor, fmt_factor_interval, fmt_number, fmt_p

from .main import DEFAULT_OUT, main

PIPED_WIDTH = 160  # characters per line when stdout is not a terminal
VERDICT_STYLES = {SLOWER: "bold red", FASTER: "green"}
OUTCOME_STYLES = {
    "pass": "green",
    "regression": "bold red",
    "failed": "bold red",
    "inconclusive": "yellow",
}


class Regression(PairbenchError):
    """The gate found a regression or a failed expectation."""

    exit_code = EXIT_FAILED


class Inconclusive(PairbenchError):
    """The gate could not decide: invalid data, a missing pair, too few rounds."""

    exit_code = EXIT_UNTRUSTED


def load(path: Path) -> dict[str, Any]:
    """A stored run, or a usage error (exit 2) naming the file and the problem in one line."""
    try:
        run: dict[str, Any] = load_run(path)
    except RunFileError as error:
        raise UsageError(str(error)) from error
    return run


@main.command("compare")
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@click.option(
    "--alpha",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=ALPHA,
    show_default=True,
    help="significance level of the verdicts",
)
def compare_cmd(base: Path, new: Path, alpha: float) -> None:
    """Per pair, variant, knob value and metric: NEW / BASE, 95% CI and a verdict."""
    base_run, new_run = load(base), load(new)
    comparisons = compare(base_run, new_run, alpha=alpha)
    console = _console()
    if not comparisons:
        console.print(f"no pair and variant in common between {base} and {new}")
        return
    for name in dict.fromkeys(c.pair for c in comparisons):
        console.print(comparison_table(name, [c for c in comparisons if c.pair == name]))
    counts = {v: sum(1 for c in comparisons if c.verdict == v) for v in (SLOWER, FASTER)}
    console.print(
        f"{len(comparisons)} comparisons of {new_run['run_id']} against {base_run['run_id']}: "
        f"{counts[SLOWER]} slower, {counts[FASTER]} faster, the rest within noise or without data"
    )


@main.command("gate")
@click.option(
    "--baseline",
    "baseline",
    required=True,
    type=click.Path(path_type=Path),
    help="the stored run to hold NEW against",
)
@click.argument("new", required=False, type=click.Path(path_type=Path))
@click.option(
    "--min-effect",
    type=click.FloatRange(0.0, 10.0),
    default=MIN_EFFECT,
    show_default=True,
    help="smallest slowdown that fails, at the interval's bound (0.10 = 10%)",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=ALPHA,
    show_default=True,
    help="significance level",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="folder for gate.md and junit.xml (default: the new run's folder)",
)
@click.option(
    "--runs",
    type=click.Path(path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="where the new run is stored when NEW is not given",
)
def gate_cmd(
    baseline: Path, new: Path | None, min_effect: float, alpha: float, out: Path | None, runs: Path
) -> None:
    """Compare NEW (or a fresh run with BASELINE's configuration) and decide: exit 0, 1 or 3."""
    base_run = load(baseline)
    if new is None:
        new = rerun(baseline, runs)
    new_run = load(new)
    result = gate(base_run, new_run, min_effect=min_effect, alpha=alpha)
    console = _console()
    console.print(gate_table(result))
    for path in write_gate_files(result, out or run_file_path(new).parent):
        console.print(str(path))
    if result.exit_code == EXIT_FAILED:
        raise Regression(result.summary())
    if result.exit_code == EXIT_UNTRUSTED:
        raise Inconclusive(result.summary())
    console.print(result.summary())


def rerun(baseline: Path, runs: Path) -> Path:
    """Run the experiment again with the baseline's stored configuration; its folder."""
    from pairbench.harness.runner import Progress

    from . import replay  # starts servers and load generators: imported only when needed

    err = Console(stderr=True)
    err.print(f"re-running {baseline} with its stored configuration into {runs}")
    return replay.rerun(baseline, runs, Progress(message=lambda text: err.print(text)))


def _console() -> Console:
    """stdout; piped into a file or a CI log, wide enough that tables do not wrap."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def comparison_table(pair: str, comparisons: Sequence[Comparison]) -> Table:
    """One pair's comparisons, one row each."""
    table = Table(title=f"{pair}: new / baseline", title_justify="left")
    for column in ("variant", "knob", "metric"):
        table.add_column(column)
    for column in ("baseline", "new", "new/base", "95% CI", "p"):
        table.add_column(column, justify="right")
    table.add_column("verdict")
    for c in comparisons:
        style = VERDICT_STYLES.get(c.verdict)
        table.add_row(
            c.variant,
            c.knob,
            f"{c.metric} ({c.unit})",
            fmt_number(c.base),
            fmt_number(c.new),
            fmt_factor(c.ratio),
            fmt_factor_interval(c.ci_low, c.ci_high),
            fmt_p(c.p_value),
            f"[{style}]{c.verdict}[/]" if style else c.verdict,
        )
    return table


def gate_table(result: GateResult) -> Table:
    """One row per pair: its verdict and why."""
    table = Table(
        title=f"gate: {result.new_run_id} against {result.base_run_id}", title_justify="left"
    )
    table.add_column("pair")
    table.add_column("verdict")
    table.add_column("why")
    for pair in result.pairs:
        style = OUTCOME_STYLES[pair.outcome]
        table.add_row(pair.pair, f"[{style}]{pair.outcome}[/]", pair.reasons[0])
    return table
