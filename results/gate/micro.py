"""NEW against BASE for two saved micro suite files: the stored-run gate's statistics on
pytest-benchmark's rounds (docs/ci.md, "Gating the micro benchmarks").

A micro benchmark's sample unit is the round: pytest-benchmark times `iterations` calls
together and stores the time per call of each round (`stats.data`, with
`--benchmark-save-data`). BASE and NEW are two separate sessions, so their rounds are unrelated:
per benchmark (pair, variant, knob value) the estimate is NEW / BASE of the rounds' geometric
means, with Welch's t on the logs (`ratio_with_ci(paired=False)`), as `compare` does for two
stored runs. Rounds within one session are not independent of the machine's drift (they run
back to back, minutes apart from the other benchmarks): the interval covers round-to-round
noise, not a machine that changed between the two sessions. The p-values are adjusted together
(Benjamini-Hochberg) and verdicts, the minimum effect and exit codes are the gate's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..analysis.ratios import MIN_SAMPLES_FOR_INFERENCE, ratio_with_ci
from ..io.microbench import MicroBenchmark, MicroFile
from .compare import ALPHA, NO_CHANGE, NO_DATA, Comparison, adjust
from .gate import MIN_EFFECT, GateResult, PairGate, is_regression, regression_lines

MICRO = "micro"  # GateResult.design for two micro files
METRIC = "time per call"
MS_PER_S = 1000.0


def compare_micro(base: MicroFile, new: MicroFile, *, alpha: float = ALPHA) -> list[Comparison]:
    """Every benchmark both files hold (by pair, variant and knob), in NEW's order; both files
    must carry their rounds (`MicroFile.require_data`)."""
    base.require_data()
    new.require_data()
    by_key = {b.key: b for b in base.benchmarks}
    comparisons = [
        _compare(by_key[bench.key], bench) for bench in new.benchmarks if bench.key in by_key
    ]
    return adjust(comparisons, alpha)


def _compare(base: MicroBenchmark, new: MicroBenchmark) -> Comparison:
    base_ms = [t * MS_PER_S for t in base.data or ()]
    new_ms = [t * MS_PER_S for t in new.data or ()]
    estimate = ratio_with_ci(new_ms, base_ms, paired=False)
    return Comparison(
        pair=new.pair,
        variant=new.variant,
        knob=new.knob_text,
        metric=METRIC,
        base=_geometric_mean(base_ms),
        new=_geometric_mean(new_ms),
        ratio=estimate.ratio,
        ci_low=estimate.ci_low,
        ci_high=estimate.ci_high,
        p_value=estimate.p_value,
        base_rounds=len(base_ms),
        new_rounds=len(new_ms),
        detectable=min(len(base_ms), len(new_ms)) >= MIN_SAMPLES_FOR_INFERENCE,
        verdict=NO_CHANGE if estimate.ratio is not None else NO_DATA,
    )


def _geometric_mean(values: Sequence[float]) -> float | None:
    return float(np.exp(np.mean(np.log(values)))) if values else None


def gate_micro(
    base: MicroFile, new: MicroFile, min_effect: float = MIN_EFFECT, alpha: float = ALPHA
) -> GateResult:
    """The gate over two micro files: per pair, a regression when a benchmark is significantly
    slower after the adjustment by `min_effect` or more; inconclusive when a benchmark of BASE
    is missing from NEW or has too few rounds."""
    comparisons = compare_micro(base, new, alpha=alpha)
    names = list(
        dict.fromkeys([*(b.pair for b in new.benchmarks), *(b.pair for b in base.benchmarks)])
    )
    pairs = tuple(_pair_gate(name, base, new, comparisons, min_effect) for name in names)
    return GateResult(
        base_run_id=base.label,
        new_run_id=new.label,
        min_effect=min_effect,
        alpha=alpha,
        pairs=pairs,
        comparisons=tuple(comparisons),
        design=MICRO,
        metrics=METRIC,
    )


def _pair_gate(
    name: str,
    base: MicroFile,
    new: MicroFile,
    comparisons: Sequence[Comparison],
    min_effect: float,
) -> PairGate:
    mine = [c for c in comparisons if c.pair == name]
    seconds = sum(sum(b.data or ()) * b.iterations for b in new.benchmarks if b.pair == name)
    new_keys = {b.key for b in new.benchmarks if b.pair == name}
    base_keys = {b.key for b in base.benchmarks if b.pair == name}
    if not new_keys:
        return PairGate(name, name, "inconclusive", (f"not measured in {new.label}",))
    if not base_keys:
        return PairGate(
            name, name, "pass", ("not in the baseline: nothing to compare",), (), seconds
        )
    regressions = tuple(c for c in mine if is_regression(c, min_effect))
    unsure = []
    gone = sorted(base_keys - new_keys)
    if gone:
        _, variant, knob = gone[0]
        unsure.append(
            f"{len(gone)} benchmark{'s' if len(gone) > 1 else ''} of the baseline missing "
            f"from {new.label}, e.g. {variant} at {knob}"
        )
    weak = [c for c in mine if not c.detectable]
    if weak:
        unsure.append(
            f"too few rounds to detect a change ({weak[0].base_rounds} in the baseline, "
            f"{weak[0].new_rounds} new) for {weak[0].variant}: save at least 2, better 5"
        )
    if regressions:
        return PairGate(
            name,
            name,
            "regression",
            tuple([*regression_lines(regressions, min_effect), *unsure]),
            regressions,
            seconds,
        )
    if unsure:
        return PairGate(name, name, "inconclusive", tuple(unsure), (), seconds)
    return PairGate(name, name, "pass", (f"no regression in {len(mine)} comparisons",), (), seconds)
