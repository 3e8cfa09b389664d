"""The regression gate: NEW against BASE, decided per pair, then for the run.

docs/architecture.md, "The gate". The trusted design is interleaved: one run measured both
versions in the same shuffled rounds (`gate_interleaved`); gating against a stored run made at
another time (`gate`) stays available, labelled weaker, its intervals widened by the between-run
spread `calibrate` measured when one is known.

A regression needs both: a significant slowdown after the false-discovery adjustment over every
comparison of the gate (Benjamini-Hochberg, adjusted p < alpha, the interval clear of 1x) and an
estimated slowdown of at least `min_effect` (5% by default), so a real but negligible shift does
not fail a build. Every pair's own expectation is checked again in NEW. Data that cannot support
a verdict (a variant with no valid rounds, a missing pair, too few rounds) makes the result
inconclusive, never a silent pass; a metric a round has too few requests to estimate is not
judged and said so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pairbench.errors import EXIT_FAILED, EXIT_OK, EXIT_UNTRUSTED

from ..analysis.stats import analyse_pair
from ..report.formatting import fmt_factor, fmt_factor_interval, fmt_p
from .compare import (
    ALPHA,
    NO_DATA,
    NOT_JUDGED,
    SLOWER,
    Calibration,
    Comparison,
    MetricSet,
    compare,
    compare_interleaved,
)

MIN_EFFECT = 0.05
INTERLEAVED = "interleaved"
STORED = "stored"
COMPLETE = "complete"

Outcome = Literal["pass", "regression", "failed", "inconclusive"]
EXIT_CODES: dict[str, int] = {
    "pass": EXIT_OK,
    "regression": EXIT_FAILED,
    "failed": EXIT_FAILED,
    "inconclusive": EXIT_UNTRUSTED,
}

Run = Mapping[str, Any]


@dataclass(frozen=True)
class PairGate:
    """One pair's verdict and the reasons for it."""

    pair: str
    title: str
    outcome: Outcome
    reasons: tuple[str, ...]
    regressions: tuple[Comparison, ...] = ()
    seconds: float = 0.0  # measured time of the pair in NEW


@dataclass(frozen=True)
class GateResult:
    """The gate's decision, and everything gate.md and junit.xml show."""

    base_run_id: str
    new_run_id: str
    min_effect: float
    alpha: float
    pairs: tuple[PairGate, ...]
    comparisons: tuple[Comparison, ...]
    problems: tuple[str, ...] = field(default=())  # about a whole run, e.g. its status
    design: str = INTERLEAVED  # interleaved (one run, paired rounds) or stored (two runs)
    metrics: str = "headline"
    calibrated: bool = False  # stored design: intervals widened by a calibration

    @property
    def outcome(self) -> Literal["pass", "regression", "inconclusive"]:
        """Regression (or a failed expectation) beats inconclusive beats pass."""
        outcomes = {p.outcome for p in self.pairs}
        if outcomes & {"regression", "failed"}:
            return "regression"
        if "inconclusive" in outcomes or self.problems:
            return "inconclusive"
        return "pass"

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression or failed expectation, 3 inconclusive (docs/architecture.md, Exit codes)."""
        return EXIT_CODES[self.outcome]

    def summary(self) -> str:
        """One line for a terminal or a CI log."""
        counts = {o: sum(1 for p in self.pairs if p.outcome == o) for o in EXIT_CODES}
        listed = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
        bad = [p for p in self.pairs if p.outcome != "pass"]
        first = f": {bad[0].pair}: {bad[0].reasons[0]}" if bad and bad[0].reasons else ""
        if not bad and self.problems:
            first = f": {self.problems[0]}"
        return f"gate {self.outcome.upper()} ({listed or 'no pairs'}){first}"


def gate(
    base: Run,
    new: Run,
    min_effect: float = MIN_EFFECT,
    alpha: float = ALPHA,
    *,
    metrics: MetricSet = "headline",
    calibration: Calibration | None = None,
) -> GateResult:
    """NEW against a stored BASE (the weaker design); pure: reads the two runs, writes nothing."""
    comparisons = compare(base, new, alpha=alpha, metrics=metrics, calibration=calibration)
    problems = [
        f"{which} run {run['run_id']} is {run['status']}, not {COMPLETE}"
        for which, run in (("new", new), ("baseline", base))
        if run.get("status") != COMPLETE
    ]
    return _decide(
        base["pairs"],
        new,
        comparisons,
        min_effect,
        alpha,
        str(base["run_id"]),
        problems,
        STORED,
        metrics,
        calibration is not None,
    )


def gate_interleaved(
    run: Run,
    min_effect: float = MIN_EFFECT,
    alpha: float = ALPHA,
    *,
    metrics: MetricSet = "headline",
) -> GateResult:
    """One interleaved run: its baseline side against its new side, paired by round."""
    baseline = run.get("baseline")
    if not baseline:
        raise ValueError(f"run {run['run_id']} has no baseline: it is not an interleaved run")
    comparisons = compare_interleaved(run, alpha=alpha, metrics=metrics)
    problems = []
    if run.get("status") != COMPLETE:
        problems.append(f"run {run['run_id']} is {run['status']}, not {COMPLETE}")
    label = f"{baseline['ref']} ({str(baseline.get('commit') or 'same code')[:10]})"
    return _decide(
        baseline["pairs"],
        run,
        comparisons,
        min_effect,
        alpha,
        label,
        problems,
        INTERLEAVED,
        metrics,
        False,
    )


def _decide(
    base_pairs: Mapping[str, Any],
    new: Run,
    comparisons: Sequence[Comparison],
    min_effect: float,
    alpha: float,
    base_label: str,
    problems: Sequence[str],
    design: str,
    metrics: str,
    calibrated: bool,
) -> GateResult:
    names = [*new["pairs"], *(n for n in base_pairs if n not in new["pairs"])]
    pairs = tuple(
        _pair_gate(name, base_pairs, new, [c for c in comparisons if c.pair == name], min_effect)
        for name in names
    )
    return GateResult(
        base_run_id=base_label,
        new_run_id=str(new["run_id"]),
        min_effect=min_effect,
        alpha=alpha,
        pairs=pairs,
        comparisons=tuple(comparisons),
        problems=tuple(problems),
        design=design,
        metrics=metrics,
        calibrated=calibrated,
    )


def is_regression(comparison: Comparison, min_effect: float) -> bool:
    """Significantly slower after the adjustment, by an estimated min_effect or more."""
    slowdown = comparison.slowdown
    return comparison.verdict == SLOWER and slowdown is not None and slowdown >= 1.0 + min_effect


def describe(comparison: Comparison) -> str:
    """E.g. `join p50 at n=100: 1.30x of baseline (95% CI 1.25x–1.36x, adjusted p=0.029)`."""
    p = comparison.p_adjusted if comparison.p_adjusted is not None else comparison.p_value
    return (
        f"{comparison.variant} {comparison.metric} at {comparison.knob}: "
        f"{fmt_factor(comparison.ratio)} of baseline "
        f"(95% CI {fmt_factor_interval(comparison.ci_low, comparison.ci_high)}, "
        f"adjusted p={fmt_p(p)})"
    )


def _pair_gate(
    name: str,
    base_pairs: Mapping[str, Any],
    new: Run,
    comparisons: Sequence[Comparison],
    min_effect: float,
) -> PairGate:
    new_pair = new["pairs"].get(name)
    base_pair = base_pairs.get(name)
    title = str((new_pair or base_pair or {}).get("title", name))
    if new_pair is None:
        return PairGate(name, title, "inconclusive", ("not measured in the new run",))
    seconds = sum(float(t["elapsed_s"]) for t in new_pair.get("trials", []))
    if base_pair is None:
        return PairGate(
            name, title, "pass", ("not in the baseline: nothing to compare",), (), seconds
        )
    failed: list[str] = []
    unsure: list[str] = []
    if not (new_pair.get("verification") or {}).get("passed"):
        failed.append("verification failed in the new run")
    if not (base_pair.get("verification") or {}).get("passed"):
        unsure.append("the baseline failed verification: not compared")
    expectation = analyse_pair(new_pair)["expectation"]
    if expectation["passed"] is False:
        failed.append(f"expectation failed: {expectation['detail']}")
    elif expectation["passed"] is None and new_pair.get("expectation"):
        unsure.append(f"expectation not judged: {expectation['detail']}")
    regressions = tuple(c for c in comparisons if is_regression(c, min_effect))
    unsure += _data_problems(comparisons)
    unjudged = [c.note for c in comparisons if c.verdict == NOT_JUDGED]
    notes = [f"{len(unjudged)} not judged, e.g. {unjudged[0]}"] if unjudged else []
    reasons = [*regression_lines(regressions, min_effect), *failed, *unsure]
    outcome: Outcome = "pass"
    if regressions:
        outcome = "regression"
    elif failed:
        outcome = "failed"
    elif unsure:
        outcome = "inconclusive"
    if outcome == "pass":
        held = "expectation passed" if new_pair.get("expectation") else "no expectation declared"
        judged = sum(1 for c in comparisons if c.verdict != NOT_JUDGED)
        reasons = [f"no regression in {judged} comparisons; {held}"]
    return PairGate(name, title, outcome, tuple([*reasons, *notes]), regressions, seconds)


def _data_problems(comparisons: Sequence[Comparison]) -> list[str]:
    """Cells one side has no valid data for, too few rounds, or nothing judged at all."""
    problems = []
    missing = [c for c in comparisons if c.verdict == NO_DATA]
    if missing:
        first = missing[0]
        side = "new run" if first.new is None else "baseline"
        problems.append(
            f"no valid data for {len(missing)} comparisons, e.g. {first.variant} "
            f"{first.metric} at {first.knob} in the {side}"
        )
    weak = [c for c in comparisons if c.verdict not in (NO_DATA, NOT_JUDGED) and not c.detectable]
    if weak:
        first = weak[0]
        problems.append(
            f"too few rounds to detect a change ({first.base_rounds} in the baseline, "
            f"{first.new_rounds} new): measure at least 2, better 5"
        )
    if comparisons and all(c.verdict == NOT_JUDGED for c in comparisons):
        problems.append("no comparison could be judged: " + comparisons[0].note)
    if not comparisons:
        problems.append("no variant and knob value measured in both")
    return problems


def regression_lines(regressions: Sequence[Comparison], min_effect: float) -> list[str]:
    """The worst regression first (largest certain slowdown), then each one."""
    if not regressions:
        return []
    worst = max(regressions, key=lambda c: c.slowdown or 0.0)
    count = len(regressions)
    head = (
        f"{count} metric{'s' if count > 1 else ''} slower by {min_effect:.0%} or more; "
        f"worst: {describe(worst)}"
    )
    return [head, *(f"slower: {describe(c)}" for c in regressions)]
