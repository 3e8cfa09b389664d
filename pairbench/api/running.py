"""Running pairs from Python: what `pairbench run` takes, checked, then measured, stored and drawn.

The command line's `run` builds its options and finishes its runs with the same functions
(`options`, `finish`), so a notebook's run and a terminal's are one procedure
(docs/architecture.md, Layers). Errors are pairbench's own (pairbench/errors.py): a wrong
argument is a UsageError naming it, raised before any server starts (checks.before_run).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from pairbench.errors import UsageError, VerificationError
from pairbench.harness import runner, scenario, services

from . import checks
from .analysis import store_analysis
from .stored import Run

DEFAULT_OUT = Path("results")
DEFAULT_PROFILE = "quick"
# The command line's ranges (`pairbench run --help`), checked the same way here.
SEED_RANGE = (0, 2**31 - 1)
ROUNDS_RANGE = (1, 1000)
PROCESSES_RANGE = (1, 64)

Echo = Callable[[str], None]
KnobValues = Sequence[float] | Mapping[str, Sequence[float]]


def options(
    pairs: Sequence[str],
    profile: str,
    out: Path,
    seed: int | None,
    verify_only: bool,
    **service_flags: str | None,
) -> runner.RunOptions:
    """The engine's options for a run of `pairs` (all when empty); a fresh seed when None."""
    # The stopping rule's statistics (scipy) load only for commands that run pairs.
    from pairbench.results.analysis import stopping

    return runner.RunOptions(
        pairs=list(pairs),
        profile=profile,
        out=out,
        seed=seed if seed is not None else runner.now_seed(),
        services=services.ServiceOptions.from_env(**service_flags),
        verify_only=verify_only,
        stopper=stopping.Stopper(),
    )


def finish(
    outcome: runner.RunOutcome, timing: dict[str, float], echo: Echo, render: bool = True
) -> list[Path]:
    """After the last trial: figures and reports (unless `render` is false), then the analysis
    stored in run.json with `timing`; returns the files written.

    Drawing comes first, from the run.json the run left (render recomputes the analysis
    anyway), so that run.json's one last write carries how long both took (docs/run-format.md,
    `timing`); a render that fails still leaves the analysis stored.
    """
    assert outcome.run_dir is not None  # a measured run always has its folder
    written: list[Path] = []
    rendering = time.perf_counter()
    try:
        if render:
            written = _render(outcome.run_dir, echo)
            timing["render_s"] = round(time.perf_counter() - rendering, 3)
    finally:
        store_analysis(outcome.run_dir, outcome.run, timing)
    return written


def _render(run_dir: Path, echo: Echo) -> list[Path]:
    from pairbench.results.io.microbench import MICRO_STORAGE, MicroFileError
    from pairbench.results.report import render as results_report

    # The micro suite's results for this commit and machine, when there are some, beside the
    # end-to-end ratios (docs/architecture.md, "The micro suite"). A broken file there costs
    # the report its micro section, said in one line, never the run's results.
    written: list[Path]
    try:
        written = results_report.render(run_dir, services.state_dir() / MICRO_STORAGE)
    except MicroFileError as e:
        echo(f"micro results not shown: {e}")
        written = results_report.render(run_dir)
    return written


def run(
    pairs: str | Sequence[str] = (),
    *,
    profile: str = DEFAULT_PROFILE,
    seed: int | None = None,
    rounds: int | None = None,
    knob_values: KnobValues | None = None,
    out: str | os.PathLike[str] = DEFAULT_OUT,
    processes: int = 1,
    render: bool = True,
    echo: Echo | None = print,
    pg_dsn: str | None = None,
    redis_url: str | None = None,
    pg_bin: str | None = None,
    redis_bin: str | None = None,
) -> Run:
    """Verify and measure `pairs` (all when none is named), store the run and return it.

    As `pairbench run`: `profile`, `seed`, `rounds` (a fixed count per knob value instead of
    the adaptive rule), `out`, `processes` and the servers (`pg_dsn`, ...; else the
    environment, else the embedded ones; replaying a stored run stays the CLI's). Beyond it:
    `knob_values` measures only these values of the profile's sweep (one list for every pair,
    or pair -> list), `render=False` skips the figure files and reports (draw them inline with
    `Run.figures`), and `echo` receives the progress lines (None: silent). A failed
    expectation is a verdict (`Run.verdicts`), not an error; a failed verification raises
    VerificationError after the run is stored.
    """
    names = [pairs] if isinstance(pairs, str) else list(pairs)
    _in_range("seed", seed, SEED_RANGE)
    _in_range("rounds", rounds, ROUNDS_RANGE)
    _in_range("processes", processes, PROCESSES_RANGE)
    flags = {"pg_dsn": pg_dsn, "redis_url": redis_url, "pg_bin": pg_bin, "redis_bin": redis_bin}
    out_dir = Path(out)
    chosen = options(names, profile, out_dir, seed, False, **flags)
    chosen.rounds = rounds
    if knob_values is not None:
        chosen.scenarios = _with_knob_values(scenario.select(names), profile, knob_values)
    chosen.processes = processes
    say = echo or (lambda text: None)
    started = time.perf_counter()
    checks.before_run(chosen, {"out": out_dir})
    timing = {"checks_s": round(time.perf_counter() - started, 3)}
    outcome = runner.execute(chosen, runner.Progress(message=say))
    finish(outcome, timing, say, render)
    assert outcome.run_dir is not None
    if outcome.failed_verification:
        raise VerificationError(
            f"verification failed for {', '.join(outcome.failed_verification)}; "
            f"see {outcome.run_dir / 'run.json'}"
        )
    return Run(outcome.run_dir, outcome.run)


def _in_range(name: str, value: int | None, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{name}={value!r}: give a whole number from {low} to {high}")


def _with_knob_values(
    chosen: list[scenario.Scenario], profile: str, knob_values: KnobValues
) -> list[scenario.Scenario]:
    """The scenarios with `profile`'s sweep replaced by the given values (validated as a
    scenario file's are; their bounds are checked with the rest, checks.before_run)."""
    if isinstance(knob_values, Mapping):
        wanted = {name: list(values) for name, values in knob_values.items()}
        unknown = sorted(set(wanted) - {s.pair for s in chosen})
        if unknown:
            raise UsageError(f"knob_values[{unknown[0]!r}]: that pair is not in this run")
    else:
        wanted = {s.pair: list(knob_values) for s in chosen}
    changed = []
    for each in chosen:
        if each.pair not in wanted:
            changed.append(each)
            continue
        load = each.load(profile)
        try:
            narrowed = scenario.LoadProfile.model_validate(
                {**load.model_dump(), "knob_values": wanted[each.pair]}
            )
        except ValidationError as e:
            problem = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
            raise UsageError(f"knob_values for {each.pair}: {problem}") from e
        profiles = {**each.profiles, profile: narrowed}
        changed.append(each.model_copy(update={"profiles": profiles}))
    return changed
