"""The regression gate: NEW against a stored BASE, decided per pair, then for the run.

A regression needs both: a significant slowdown (p < alpha, the interval clear of 1x) and an
effect beyond the minimum at the interval's bound (by default at least 10% slower even at the
optimistic end), so noise on a shared machine does not fail a build. Every pair's own
expectation is checked again in NEW. Data that cannot support a verdict (invalid trials, a
missing pair, too few rounds to ever reach significance) makes the result inconclusive, never
a silent pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pairbench.errors import EXIT_FAILED, EXIT_OK, EXIT_UNTRUSTED

from ..analysis.stats import analyse_pair
from ..report.formatting import fmt_factor, fmt_factor_interval, fmt_p
from .compare import ALPHA, NO_DATA, SLOWER, Comparison, compare

MIN_EFFECT = 0.10
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


def gate(base: Run, new: Run, min_effect: float = MIN_EFFECT, alpha: float = ALPHA) -> GateResult:
    """Decide whether NEW regressed against BASE; pure: reads the two runs, writes nothing."""
    comparisons = compare(base, new, alpha=alpha)
    problems = tuple(
        f"{which} run {run['run_id']} is {run['status']}, not {COMPLETE}"
        for which, run in (("new", new), ("baseline", base))
        if run.get("status") != COMPLETE
    )
    names = [*base["pairs"], *(n for n in new["pairs"] if n not in base["pairs"])]
    pairs = tuple(
        _pair_gate(name, base, new, [c for c in comparisons if c.pair == name], min_effect, alpha)
        for name in names
    )
    return GateResult(
        base_run_id=str(base["run_id"]),
        new_run_id=str(new["run_id"]),
        min_effect=min_effect,
        alpha=alpha,
        pairs=pairs,
        comparisons=tuple(comparisons),
        problems=problems,
    )


def is_regression(comparison: Comparison, min_effect: float) -> bool:
    """Significantly slower, and slower by at least min_effect at the interval's bound."""
    bound = comparison.slower_by
    return comparison.verdict == SLOWER and bound is not None and bound >= 1.0 + min_effect


def describe(comparison: Comparison) -> str:
    """E.g. `join p50 at n=100: 1.30x of baseline (95% CI 1.25x–1.36x, p=0.029)`."""
    return (
        f"{comparison.variant} {comparison.metric} at {comparison.knob}: "
        f"{fmt_factor(comparison.ratio)} of baseline "
        f"(95% CI {fmt_factor_interval(comparison.ci_low, comparison.ci_high)}, "
        f"p={fmt_p(comparison.p_value)})"
    )


def _pair_gate(
    name: str,
    base: Run,
    new: Run,
    comparisons: Sequence[Comparison],
    min_effect: float,
    alpha: float,
) -> PairGate:
    new_pair = new["pairs"].get(name)
    base_pair = base["pairs"].get(name)
    title = str((new_pair or base_pair or {}).get("title", name))
    if new_pair is None:
        return PairGate(name, title, "inconclusive", ("not measured in the new run",))
    seconds = sum(float(t["elapsed_s"]) for t in new_pair.get("trials", []))
    failed: list[str] = []
    unsure: list[str] = []
    if not (new_pair.get("verification") or {}).get("passed"):
        failed.append("verification failed in the new run")
    expectation = analyse_pair(new_pair)["expectation"]
    if expectation["passed"] is False:
        failed.append(f"expectation failed: {expectation['detail']}")
    elif expectation["passed"] is None and new_pair.get("expectation"):
        unsure.append(f"expectation not judged: {expectation['detail']}")
    regressions = tuple(c for c in comparisons if is_regression(c, min_effect))
    if base_pair is None:
        unsure.append("no baseline for this pair")
    unsure += _data_problems(comparisons, alpha)
    reasons = [*_regression_lines(regressions, min_effect), *failed, *unsure]
    outcome: Outcome = "pass"
    if regressions:
        outcome = "regression"
    elif failed:
        outcome = "failed"
    elif unsure:
        outcome = "inconclusive"
    if outcome == "pass":
        held = "expectation passed" if new_pair.get("expectation") else "no expectation declared"
        reasons = [f"no regression in {len(comparisons)} comparisons; {held}"]
    return PairGate(name, title, outcome, tuple(reasons), regressions, seconds)


def _data_problems(comparisons: Sequence[Comparison], alpha: float) -> list[str]:
    """Cells one run has no valid data for, and cells with too few rounds to judge."""
    problems = []
    missing = [c for c in comparisons if c.verdict == NO_DATA]
    if missing:
        first = missing[0]
        side = "new run" if first.new is None else "baseline"
        problems.append(
            f"no valid data for {len(missing)} comparisons, e.g. {first.variant} "
            f"{first.metric} at {first.knob} in the {side}"
        )
    weak = [c for c in comparisons if c.verdict != NO_DATA and not c.detectable]
    if weak:
        first = weak[0]
        problems.append(
            f"too few rounds to detect a change ({first.base_rounds} in the baseline, "
            f"{first.new_rounds} new): no p-value can fall below {alpha}; measure more rounds"
        )
    return problems


def _regression_lines(regressions: Sequence[Comparison], min_effect: float) -> list[str]:
    """The worst regression first (largest certain slowdown), then each one."""
    if not regressions:
        return []
    worst = max(regressions, key=lambda c: c.slower_by or 0.0)
    count = len(regressions)
    head = (
        f"{count} metric{'s' if count > 1 else ''} slower by {min_effect:.0%} or more; "
        f"worst: {describe(worst)}"
    )
    return [head, *(f"slower: {describe(c)}" for c in regressions)]
