"""`pairbench calibrate`: A/A on this machine, so the gate knows what it can and cannot see.

docs/architecture.md, "Calibration". It runs the current code against itself twice over: once
interleaved (two servers of the same version in the same rounds, as the gate runs) and as
`--repeats` separate runs; the results package turns them into noise figures, printed and stored
in the state folder for the stored-run gate to widen its intervals with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from pairbench.results.gate import calibration
from pairbench.results.gate.compare import ALPHA
from pairbench.results.report.formatting import fmt_factor

from .compare import _console, calibration_folder, interleaved_run, load, min_effect_option
from .main import DEFAULT_OUT, main, service_options


@main.command("calibrate")
@click.argument("pairs", nargs=-1)
@click.option("--profile", default="gate", show_default=True, help="the profile to calibrate")
@click.option(
    "--repeats",
    type=click.IntRange(2, 50),
    default=3,
    show_default=True,
    help="separate runs for the run-to-run spread",
)
@min_effect_option
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), help="seed of the first run's shuffles")
@click.option(
    "--runs",
    type=click.Path(path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="where the A/A runs are stored",
)
@click.option("--no-progress", is_flag=True, help="plain lines instead of a progress bar")
@service_options
def calibrate_cmd(
    pairs: tuple[str, ...],
    profile: str,
    repeats: int,
    min_effect: float,
    seed: int | None,
    runs: Path,
    no_progress: bool,
    **service_flags: str | None,
) -> None:
    """Measure A/A noise for PAIRS (all when none): spread, detectable slowdown, false alarms."""
    from pairbench.harness import baseline, runner

    from .analysis import store_analysis
    from .commands import console as err
    from .commands import progress_display, run_options

    start = seed if seed is not None else runner.now_seed()
    err.print(f"calibrate 1/{repeats + 1}: the code against itself, interleaved")
    aa_dir = interleaved_run(
        "same code",
        pairs,
        profile,
        start,
        runs,
        {},
        no_progress,
        service_flags,
        base=baseline.same_code(),
    )
    separate = []
    for index in range(repeats):
        err.print(f"calibrate {index + 2}/{repeats + 1}: separate run {index + 1} of {repeats}")
        options = run_options(pairs, profile, runs, start + 1 + index, False, **service_flags)
        with progress_display(not no_progress and err.is_terminal) as progress:
            outcome = runner.execute(options, progress)
        assert outcome.run_dir is not None
        store_analysis(outcome.run_dir, outcome.run)
        separate.append(load(outcome.run_dir))
    aa_run = load(aa_dir)
    doc = calibration.document(aa_run, separate, min_effect, ALPHA)
    path = calibration.store(doc, calibration_folder(), aa_run)
    print_calibration(doc)
    _console().print(f"stored for the gate: {path}")


def print_calibration(doc: dict[str, Any]) -> None:
    """One row per gated comparison, then the false-alarm estimate."""
    console = _console()
    table = Table(
        title=f"calibration of profile {doc['profile']} on this machine ({doc['machine_key']})",
        title_justify="left",
    )
    for column in ("pair", "variant", "knob", "metric"):
        table.add_column(column)
    for column in ("A/A new/base", "round sd", "detects (90%)", "headline runs", "spread"):
        table.add_column(column, justify="right")
    for name, entry in doc["pairs"].items():
        spread = entry.get("headline_spread") or {}
        ratios = ", ".join(f"{r:.3g}x" for r in spread.get("ratios", []))
        cv = spread.get("cv")
        for index, row in enumerate(entry["interleaved"]):
            mde = row["detectable_slowdown"]
            table.add_row(
                name if index == 0 else "",
                row["variant"],
                row["knob"],
                row["metric"],
                fmt_factor(row["ratio"]),
                "" if row["log_sd"] is None else f"{row['log_sd']:.1%}",
                "" if mde is None else f"+{mde - 1:.1%}",
                ratios if index == 0 else "",
                ("" if cv is None else f"CV {cv:.1%}") if index == 0 else "",
            )
    console.print(table)
    rate = doc.get("false_alarm_rate")
    if rate is not None:
        console.print(
            f"false alarms of the default gate (min effect {doc['min_effect']:.0%}, "
            f"{doc['family']} comparisons), over {doc['patterns']} sign-flips of the interleaved "
            f"A/A run's rounds: {rate:.1%}"
        )
    for note in doc.get("not_judged") or []:
        console.print(f"not judged: {note}")
