"""Is the adaptive stopping rule honest? Coverage of the interval it stops on, by simulation.

A rule that stops when an interval is narrow can stop on rounds that happen to agree: with
three rounds a small spread is as likely luck as fact, and the interval it stops on then covers
the truth less than 95% of the time. And a rule that goes on while the expectation is undecided
gets several looks at it. This script measures both for the rule pairbench uses
(results/analysis/stopping.py): per-round log ratios are drawn from a distribution with a
known ratio (normal, or Student's t with 4 degrees of freedom for the heavy-tailed rounds a
shared machine gives), the rule is applied round by round exactly as a run applies it, and the
script prints, per per-round spread:

- coverage: how often the final 95% interval holds the true ratio (target 0.95);
- rounds: the mean rounds run, and how often the maximum was reached;
- false decisions: with the true ratio exactly at min_ratio, how often the rule called the
  expectation decided (its interval at the per-look confidence excluded min_ratio; target at
  most 0.05).

    python benchmarks/adaptive_coverage.py [--runs 20000] [--min-rounds 3] [--max-rounds 8]
        [--precision 0.05]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats

from pairbench.results.analysis.ratios import CONFIDENCE_LEVEL
from pairbench.results.analysis.stopping import Rule

SPREADS = (0.02, 0.05, 0.1, 0.2)  # per-round sd of the log ratio; 0.05-0.15 is typical here
TRUE_LOG_RATIO = np.log(3.0)


def _draws(
    rng: np.random.Generator, runs: int, rounds: int, sigma: float, tails: str
) -> np.ndarray:
    if tails == "normal":
        return rng.normal(0.0, sigma, (runs, rounds))
    df = 4.0  # scaled so the sd is sigma
    return rng.standard_t(df, (runs, rounds)) * sigma / np.sqrt(df / (df - 2.0))


def simulate(rule: Rule, sigma: float, runs: int, tails: str, seed: int) -> dict[str, float]:
    """Apply the rule to `runs` simulated knob values; the honesty figures."""
    rng = np.random.default_rng(seed)
    logs = TRUE_LOG_RATIO + _draws(rng, runs, rule.max_rounds, sigma, tails)
    stopped = np.full(runs, rule.max_rounds)
    covered = np.zeros(runs, dtype=bool)
    done = np.zeros(runs, dtype=bool)
    decided_at_edge = np.zeros(runs, dtype=bool)  # min_ratio set to the true ratio
    going_at_edge = np.ones(runs, dtype=bool)
    limit = np.log1p(rule.precision)
    for n in range(rule.min_rounds, rule.max_rounds + 1):
        sample = logs[:, :n]
        mean = sample.mean(axis=1)
        se = sample.std(axis=1, ddof=1) / np.sqrt(n)
        half = stats.t.ppf(0.5 + CONFIDENCE_LEVEL / 2, n - 1) * se
        look = stats.t.ppf(0.5 + rule.decision_confidence / 2, n - 1) * se
        precise = half <= limit
        # The expectation far from the truth (decided at once): precision alone stops, and the
        # 95% interval it stops on should hold the truth 95% of the time.
        now = ~done & (precise | (n == rule.max_rounds))
        stopped[now] = n
        covered[now] = (np.abs(mean - TRUE_LOG_RATIO) <= half)[now]
        done |= now
        # The expectation exactly at the truth: any decision is a false one.
        decided = np.abs(mean - TRUE_LOG_RATIO) > look
        decided_at_edge |= going_at_edge & precise & decided
        going_at_edge &= ~(precise & decided)
    return {
        "coverage": float(covered.mean()),
        "mean_rounds": float(stopped.mean()),
        "at_max": float((stopped == rule.max_rounds).mean()),
        "false_decisions": float(decided_at_edge.mean()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--min-rounds", type=int, default=3)
    parser.add_argument("--max-rounds", type=int, default=8)
    parser.add_argument("--precision", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args()
    rule = Rule(args.min_rounds, args.max_rounds, args.precision)
    print(
        f"rule: {rule.min_rounds}..{rule.max_rounds} rounds, +-{rule.precision:.0%}, decided at "
        f"{rule.decision_confidence:.4f} per look; {args.runs} simulated knob values per row"
    )
    print(
        f"{'tails':<8}{'sd/round':>9}{'coverage':>10}{'rounds':>8}{'at max':>8}{'false dec.':>11}"
    )
    for tails in ("normal", "t4"):
        for sigma in SPREADS:
            row = simulate(rule, sigma, args.runs, tails, args.seed)
            print(
                f"{tails:<8}{sigma:>9.2f}{row['coverage']:>10.3f}{row['mean_rounds']:>8.2f}"
                f"{row['at_max']:>8.1%}{row['false_decisions']:>11.3f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
