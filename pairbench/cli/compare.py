"""`pairbench compare` and `pairbench gate`: a run against a stored baseline.

The statistics live in the results package (pure functions over stored runs); this module only
loads the runs, prints, writes the gate's files and maps the verdict to an exit code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from pairbench.errors import EXIT_FAILED, EXIT_UNTRUSTED, PairbenchError, UsageError
from pairbench.results.gate import calibration
from pairbench.results.gate.compare import (
    ALPHA,
    FASTER,
    SLOWER,
    Comparison,
    MetricSet,
    compare,
)
from pairbench.results.gate.gate import MIN_EFFECT, GateResult, gate, gate_interleaved
from pairbench.results.gate.micro import compare_micro, gate_micro
from pairbench.results.gate.report import write_gate_files
from pairbench.results.io.microbench import MicroFile, MicroFileError, is_micro_file, load_micro
from pairbench.results.io.runfile import RunFileError, load_run, run_file_path
from pairbench.results.report.formatting import fmt_factor, fmt_factor_interval, fmt_number, fmt_p

from . import preflight
from .main import DEFAULT_OUT, main, service_options

if TYPE_CHECKING:  # the harness starts servers: imported only when a gate runs one
    from pairbench.harness.baseline import Baseline

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


def share_a_pair(base: Path, base_run: dict[str, Any], new: Path, new_run: dict[str, Any]) -> None:
    """Two runs to compare measured at least one pair in common, or a usage error naming both."""
    base_pairs, new_pairs = list(base_run.get("pairs") or {}), list(new_run.get("pairs") or {})
    if not set(base_pairs) & set(new_pairs):
        raise UsageError(
            f"{base} and {new} share no pair: {base} has {', '.join(base_pairs) or 'none'};"
            f" {new} has {', '.join(new_pairs) or 'none'}"
        )


def micro_pair(base: Path, new: Path) -> tuple[MicroFile, MicroFile] | None:
    """Both saved micro suite files (judged by content), None when both are runs; a usage
    error when one is and the other is not, or when a file lacks its per-round timings."""
    base_micro, new_micro = is_micro_file(base), is_micro_file(new)
    if base_micro != new_micro:
        micro, other = (base, new) if base_micro else (new, base)
        raise UsageError(
            f"{micro} is a micro benchmark file (pytest-benchmark JSON) and {other} is not: "
            "compare two micro files, or two runs"
        )
    if not base_micro:
        return None
    try:
        files = load_micro(base), load_micro(new)
        for file in files:
            file.require_data()
    except MicroFileError as error:
        raise UsageError(str(error)) from error
    return files


def share_a_benchmark(base: MicroFile, new: MicroFile) -> None:
    """Two micro files to compare hold at least one benchmark in common, or a usage error."""
    if not {b.key for b in base.benchmarks} & {b.key for b in new.benchmarks}:
        raise UsageError(
            f"{base.path} and {new.path} share no benchmark (pair, variant and knob value)"
        )


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
    """Per pair, variant, knob value and metric: NEW / BASE, 95% CI and a verdict.

    BASE and NEW are two stored runs, or two micro suite files (pytest-benchmark JSON saved
    with --benchmark-save-data): then per benchmark, its time per call.
    """
    micro = micro_pair(base, new)
    if micro is not None:
        share_a_benchmark(*micro)
        print_comparisons(compare_micro(*micro, alpha=alpha), micro[0].label, micro[1].label)
        return
    base_run, new_run = load(base), load(new)
    share_a_pair(base, base_run, new, new_run)
    comparisons = compare(
        base_run,
        new_run,
        alpha=alpha,
        calibration=calibration.lookup(new_run, calibration_folder()),
    )
    if not comparisons:
        raise UsageError(f"{base} and {new} have no variant of a pair in common to compare")
    print_comparisons(comparisons, str(base_run["run_id"]), str(new_run["run_id"]))


def print_comparisons(comparisons: Sequence[Comparison], base: str, new: str) -> None:
    """A table per pair, then the count of slower and faster comparisons."""
    console = _console()
    for name in dict.fromkeys(c.pair for c in comparisons):
        console.print(comparison_table(name, [c for c in comparisons if c.pair == name]))
    counts = {v: sum(1 for c in comparisons if c.verdict == v) for v in (SLOWER, FASTER)}
    console.print(
        f"{len(comparisons)} comparisons of {new} against {base}: "
        f"{counts[SLOWER]} slower, {counts[FASTER]} faster, the rest within noise or without data"
    )


min_effect_option = click.option(
    "--min-effect",
    type=click.FloatRange(0.0, 10.0),
    default=MIN_EFFECT,
    show_default=True,
    help="smallest estimated slowdown that fails (0.05 = 5%)",
)


@main.command("gate")
@click.argument("args", nargs=-1)
@click.option(
    "--baseline-ref",
    "baseline_ref",
    metavar="REF",
    help="a git ref: serve that commit's targets beside today's and interleave both in every "
    "round (the trusted design); ARGS are the pairs (default: all)",
)
@click.option(
    "--baseline",
    "baseline",
    type=click.Path(path_type=Path),
    help="a stored run to hold NEW against (weaker: runs made at different times); ARGS is "
    "NEW_RUN (default: a fresh run with the baseline's configuration)",
)
@click.option(
    "--profile",
    default="gate",
    show_default=True,
    help="profile of the interleaved run (--baseline-ref)",
)
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), help="seed of the round shuffles")
@click.option(
    "--metrics",
    type=click.Choice(["headline", "all"]),
    default="headline",
    show_default=True,
    help="each pair's headline metric, or p50, p99, throughput and the bystander's p99",
)
@min_effect_option
@click.option(
    "--alpha",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=ALPHA,
    show_default=True,
    help="false-discovery rate over all comparisons (Benjamini-Hochberg)",
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
    help="where a run made by the gate is stored",
)
@click.option(
    "--slow-variant",
    "slow",
    multiple=True,
    metavar="PAIR/VARIANT=PCT",
    help="slow a variant of the new side by PCT percent (testing the gate itself; recorded)",
)
@click.option("--no-progress", is_flag=True, help="plain lines instead of a progress bar")
@service_options
def gate_cmd(
    args: tuple[str, ...],
    baseline_ref: str | None,
    baseline: Path | None,
    profile: str,
    seed: int | None,
    metrics: MetricSet,
    min_effect: float,
    alpha: float,
    out: Path | None,
    runs: Path,
    slow: tuple[str, ...],
    no_progress: bool,
    **service_flags: str | None,
) -> None:
    """Decide whether NEW regressed: exit 0 pass, 1 regression, 3 inconclusive.

    \b
    pairbench gate --baseline-ref REF [PAIR ...]   base and new interleaved in one run
    pairbench gate RUN_DIR                          re-judge a stored interleaved run
    pairbench gate --baseline BASE_RUN [NEW_RUN]    against a stored run (weaker)
    pairbench gate --baseline BASE.json NEW.json    two micro suite files (pytest-benchmark)
    """
    if baseline_ref is not None and baseline is not None:
        raise UsageError("give --baseline-ref (interleaved) or --baseline (stored), not both")
    if slow and baseline_ref is None:
        raise UsageError("--slow-variant needs --baseline-ref: it slows the new side of a gate run")
    slowdown = parse_slowdowns(slow)
    if out is not None and (baseline_ref is not None or args):
        preflight.output_folder(out, "--out")
    if baseline_ref is not None:
        run_dir = interleaved_run(
            baseline_ref, args, profile, seed, runs, slowdown, no_progress, service_flags
        )
        result = gate_interleaved(load(run_dir), min_effect, alpha, metrics=metrics)
        folder = run_dir
    elif baseline is not None:
        if len(args) > 1:
            raise UsageError(f"--baseline takes at most one NEW_RUN, got {len(args)} arguments")
        if not args and is_micro_file(baseline):
            raise UsageError(
                f"--baseline {baseline} is a micro benchmark file: give NEW, a micro file saved "
                "with --benchmark-save-data (micro benchmarks are not re-run by the gate)"
            )
        micro = micro_pair(baseline, Path(args[0])) if args else None
        if micro is not None:
            share_a_benchmark(*micro)
            result = gate_micro(*micro, min_effect=min_effect, alpha=alpha)
            report(result, out or micro[1].path.parent)
            return
        base_run = load(baseline)
        if args:
            new = Path(args[0])
        else:
            if out is not None:
                preflight.output_folder(out, "--out")
            new = rerun(baseline, runs)
        new_run = load(new)
        share_a_pair(baseline, base_run, new, new_run)
        known = calibration.lookup(new_run, calibration_folder())
        result = gate(
            base_run,
            new_run,
            min_effect=min_effect,
            alpha=alpha,
            metrics=metrics,
            calibration=known,
        )
        folder = run_file_path(new).parent
    else:
        if len(args) != 1:
            raise UsageError(
                "give --baseline-ref REF, --baseline BASE_RUN, or one interleaved RUN_DIR"
            )
        stored = load(Path(args[0]))
        if not stored.get("baseline"):
            raise UsageError(
                f"{args[0]}: not an interleaved run (no baseline inside); "
                "use --baseline BASE_RUN to compare two stored runs"
            )
        result = gate_interleaved(stored, min_effect, alpha, metrics=metrics)
        folder = run_file_path(Path(args[0])).parent
    report(result, out or folder)


def calibration_folder() -> Path:
    """Where `pairbench calibrate` stores what it measured (the state folder)."""
    from pairbench.harness import services

    folder: Path = services.state_dir() / "calibration"
    return folder


def report(result: GateResult, folder: Path) -> None:
    """Print the verdict, write gate.md and junit.xml, and exit with the gate's code."""
    console = _console()
    console.print(gate_table(result))
    for path in write_gate_files(result, folder):
        console.print(str(path))
    if result.exit_code == EXIT_FAILED:
        raise Regression(result.summary())
    if result.exit_code == EXIT_UNTRUSTED:
        raise Inconclusive(result.summary())
    console.print(result.summary())


def parse_slowdowns(specs: Sequence[str]) -> dict[str, float]:
    """`PAIR/VARIANT=PCT` (PCT like 20 or 20%) -> {"PAIR/VARIANT": 0.2}; a usage error otherwise."""
    found: dict[str, float] = {}
    for spec in specs:
        target, sep, amount = spec.partition("=")
        pair, slash, variant = target.partition("/")
        try:
            percent = float(amount.strip().removesuffix("%"))
        except ValueError:
            percent = math.nan
        if not (sep and slash and pair and variant) or not 0.0 < percent <= 1000.0:
            raise UsageError(
                f"--slow-variant {spec!r}: expected PAIR/VARIANT=PCT with 0 < PCT <= 1000, "
                "e.g. n_plus_one/join=20%"
            )
        found[f"{pair}/{variant}"] = percent / 100.0
    return found


def interleaved_run(
    ref: str,
    pairs: Sequence[str],
    profile: str,
    seed: int | None,
    runs: Path,
    slowdown: dict[str, float],
    no_progress: bool,
    service_flags: dict[str, str | None],
    base: Baseline | None = None,
) -> Path:
    """Build REF's targets (or take `base`), run base and new interleaved; the run's folder."""
    from pairbench.harness import baseline as baselines
    from pairbench.harness import runner

    from .analysis import store_analysis
    from .commands import console as err
    from .commands import progress_display, run_options

    options = run_options(tuple(pairs), profile, runs, seed, False, **service_flags)
    # Bad input of any kind fails before the baseline is built or anything starts.
    if base is None:
        preflight.commit(ref)
    preflight.before_run(options, {"--runs": runs})
    if base is None:
        base = baselines.build(ref, lambda text: err.print(text))
    options.baseline, options.slowdown = base, slowdown or None
    with progress_display(not no_progress and err.is_terminal) as progress:
        outcome = runner.execute(options, progress)
    assert outcome.run_dir is not None
    run_dir: Path = outcome.run_dir
    store_analysis(run_dir, outcome.run)
    if outcome.failed_verification:
        err.print(f"verification failed for {', '.join(outcome.failed_verification)}")
    return run_dir


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
    for column in ("baseline", "new", "new/base", "95% CI", "p", "adjusted p"):
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
            fmt_p(c.p_adjusted),
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
