"""The adaptive stopping rule: when a knob value has had enough rounds (docs/architecture.md,
"Adaptive rounds").

After each round at a knob value the run asks `judge`: stop once every judged ratio's 95%
interval is within +-precision of the ratio and, at the expectation's knob value, the
expectation is decided either way; never before `min_rounds` (a t-interval from two or three
rounds is as likely to be narrow by luck as by fact), never after `max_rounds`.

Judged ratios: bad / each good variant (middle variants are shown, never judged), on the
expectation's metric and subject; the same per-round values and t-interval the report prints,
so the interval the rule stopped on is the one a reader sees. "Decided" is read from a wider
interval than the report's: the rule looks after every round, and a plain 95% interval checked
up to L times would call a coin flip decided more than 5% of the time, so each look uses
1 - 0.05 / L (Bonferroni over the looks). Precision needs no such correction: how narrow an
interval is says nothing about where the truth lies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .expectation import good_variants
from .knobs import expectation_knob_key, knob_key
from .ratios import CONFIDENCE_LEVEL, RatioEstimate, ratio_with_ci
from .stats import cells_of, paired_rounds

PRECISE = "precise"  # every judged interval narrow enough, the expectation decided
MAX_ROUNDS = "max_rounds"  # the most rounds allowed, with something still open
FIXED = "fixed"  # a fixed count of rounds (`rounds = N`, `run --rounds N`)


@dataclass(frozen=True)
class Rule:
    """The stopping rule's inputs, stored in run.json so `run --from` applies the same one."""

    min_rounds: int
    max_rounds: int
    precision: float  # the largest relative half-width of a judged ratio's 95% interval

    @property
    def looks(self) -> int:
        """How many times the rule can look: after every round from min_rounds to max_rounds."""
        return self.max_rounds - self.min_rounds + 1

    @property
    def decision_confidence(self) -> float:
        """The confidence a decided expectation needs at each look (Bonferroni over the looks)."""
        return 1.0 - (1.0 - CONFIDENCE_LEVEL) / self.looks

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "decision_confidence": round(self.decision_confidence, 5)}


@dataclass(frozen=True)
class Decision:
    """After a round: stop or not, why, and what is still open."""

    stop: bool
    reason: str  # PRECISE, MAX_ROUNDS, or "" while going on
    rounds: int
    widest: float | None  # the largest relative half-width among the judged ratios
    open: list[str] = field(default_factory=list)  # what keeps the knob value going, in words

    def record(self) -> dict[str, Any]:
        """run.json's `stopping.knobs[<knob>]` (docs/run-format.md)."""
        return {
            "rounds": self.rounds,
            "reason": self.reason,
            "widest_half_width": None if self.widest is None else round(self.widest, 4),
            "open": self.open,
        }


def half_width(estimate: RatioEstimate) -> float | None:
    """The interval's relative half-width: high / ratio - 1 (the log-scale interval is
    symmetric, so ratio / low - 1 is the same); None without an interval."""
    if estimate.ratio is None or estimate.ci_high is None:
        return None
    return estimate.ci_high / estimate.ratio - 1.0


def judged_variants(pair: Mapping[str, Any]) -> list[str]:
    """The variants whose bad / variant ratio the rule judges: the good ones, or every other
    variant when the pair names none good."""
    goods = good_variants(pair)
    if goods:
        return goods
    return [v["name"] for v in pair["variants"] if v["name"] != pair["bad"]]


def judge(pair: Mapping[str, Any], knob: float, rounds: int, rule: Rule) -> Decision:
    """Whether the knob value `knob` of the pair record (its valid trials so far, `rounds`
    rounds run) may stop."""
    key = knob_key(knob)
    cells = cells_of(pair)
    # Each judged variant's rounds beside bad's, read once for both checks.
    samples = {name: paired_rounds(pair, cells, key, name) for name in judged_variants(pair)}
    estimates = {name: ratio_with_ci(bad, other) for name, (bad, other) in samples.items()}
    open_items: list[str] = []
    widths = {name: half_width(e) for name, e in estimates.items()}
    known = [w for w in widths.values() if w is not None]
    widest = max(known) if known else None
    for name, width in widths.items():
        if width is None:
            open_items.append(f"{name}: no interval yet")
        elif width > rule.precision:
            open_items.append(f"{name}: +-{width:.1%} > +-{rule.precision:.0%}")
    if key == expectation_knob_key(pair):
        open_items += _undecided(pair, samples, rule)
    if rounds < rule.min_rounds:
        return Decision(False, "", rounds, widest, open_items)
    if not open_items:
        return Decision(True, PRECISE, rounds, widest)
    if rounds >= rule.max_rounds:
        return Decision(True, MAX_ROUNDS, rounds, widest, open_items)
    return Decision(False, "", rounds, widest, open_items)


def _undecided(
    pair: Mapping[str, Any], samples: Mapping[str, tuple[list[float], list[float]]], rule: Rule
) -> list[str]:
    """What keeps the expectation open at its knob value: good variants whose ratio's interval
    (at the rule's per-look confidence) still holds min_ratio. One good variant surely below
    min_ratio decides it (the expectation fails whatever the others show)."""
    expectation = pair.get("expectation") or {}
    if not expectation or expectation.get("min_ratio") is None:
        return []
    minimum = float(expectation["min_ratio"])
    open_items, below = [], False
    for name in good_variants(pair):  # judged whenever the pair has good variants
        bad, good = samples[name]
        estimate = ratio_with_ci(bad, good, confidence=rule.decision_confidence)
        if estimate.ci_low is None or estimate.ci_high is None:
            open_items.append(f"{name}: the expectation cannot be judged yet")
        elif estimate.ci_high < minimum:
            below = True
        elif estimate.ci_low < minimum:
            open_items.append(
                f"{name}: [{estimate.ci_low:.2f}, {estimate.ci_high:.2f}] holds {minimum:g}x"
            )
    return [] if below else open_items


class Stopper:
    """The rule as the engine calls it (harness/rounds.py's `Stopper` protocol): plain dicts in
    and out, so the engine applies the reader's statistics without importing the reader
    (docs/architecture.md, Layers). The command line hands an instance to the run."""

    def rule_record(self, min_rounds: int, max_rounds: int, precision: float) -> dict[str, Any]:
        """run.json's `stopping.rule`."""
        return Rule(min_rounds, max_rounds, precision).as_dict()

    def judge(
        self,
        record: Mapping[str, Any],
        knob: float,
        rounds: int,
        min_rounds: int,
        max_rounds: int,
        precision: float,
    ) -> dict[str, Any]:
        """run.json's `stopping.knobs[<knob>]` after `rounds` rounds, with `stop` beside it."""
        decision = judge(record, knob, rounds, Rule(min_rounds, max_rounds, precision))
        return {"stop": decision.stop, **decision.record()}
