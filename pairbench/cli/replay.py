"""Replaying a stored run: its exact configuration (pairs, scenarios, sizes, seed) run again.

It reads a stored run (the reader's job) and runs the engine with it, so it lives in the
command layer above both (docs/architecture.md, Layers).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from pairbench.errors import UsageError
from pairbench.harness import scenario, services
from pairbench.harness.runner import Progress, RunOptions, execute, replay_dataset
from pairbench.results.analysis import stopping
from pairbench.results.io.runfile import RunFileError, load_run
from pairbench.results.report import render as results_report

from .analysis import store_analysis


def options_from(base_dir: Path, out: Path, service_options: services.ServiceOptions) -> RunOptions:
    """Options that re-run a stored run exactly: its pairs, scenarios, profile, sizes and seed."""
    try:
        base = load_run(base_dir)
    except RunFileError as e:
        raise UsageError(str(e)) from e
    stored = [p.get("scenario") for p in base["pairs"].values()]
    if not stored or any(s is None for s in stored) or "profile_config" not in base:
        raise UsageError(f"{base_dir}: run.json has no stored scenario configuration to replay")
    try:
        scenarios = [
            scenario.Scenario.model_validate({**s, "source": f"{base_dir}:{name}"})
            for name, s in zip(base["pairs"], stored, strict=True)
        ]
        suite = scenario.Profile.model_validate(base["profile_config"])
    except ValidationError as e:
        raise UsageError(
            f"{base_dir}: stored configuration is invalid: {e.errors()[0]['msg']}"
        ) from e
    data_seed, sizes = replay_dataset(base)
    return RunOptions(
        pairs=list(base["pairs"]),
        profile=base["profile"],
        out=out,
        seed=int(base["seed"]),
        services=service_options,
        scenarios=scenarios,
        suite=suite,
        reproduces=base["run_id"],
        data_seed=data_seed,
        expected_sizes=sizes,
        rounds=base.get("rounds"),  # `--rounds N` then, the same fixed count now
        stopper=stopping.Stopper(),
    )


def rerun(base_dir: Path, out: Path, progress: Progress | None = None) -> Path:
    """Run again with a stored run's exact configuration; returns the new run's folder."""
    from . import preflight

    options = options_from(base_dir, out, services.ServiceOptions.from_env())
    preflight.before_run(options, {"--runs": out})
    outcome = execute(options, progress)
    run_dir: Path | None = outcome.run_dir
    assert run_dir is not None
    store_analysis(run_dir, outcome.run)
    results_report.render(run_dir)
    return run_dir
