"""What the gate can detect on this machine: A/A runs turned into noise figures the gate uses.

docs/architecture.md, "Calibration". Two kinds of A/A data, both of the same code:

- one interleaved run (the code served twice, side by side): the per-round spread of the
  paired log ratios new/base gives, for each gated comparison, the smallest slowdown the default
  gate detects with 90% power, and a false-alarm rate estimated by resampling its rounds;
- several separate runs: the run-to-run spread of each pair's headline ratio (bad / good), and
  for every variant and metric the between-run standard deviation of its log, the part a single
  run's rounds cannot show. The stored-run gate adds it to its intervals.

Pure functions over stored runs; the CLI runs the A/A measurements and stores the document in
the state folder, one file per machine and profile.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats as scipy_stats

from pairbench.atomicfile import write_text_atomic

from ..analysis.expectation import best_good
from ..analysis.knobs import expectation_knob_key, knob_text, sorted_keys
from ..analysis.ratios import ratio_with_ci
from ..analysis.rounds import BYSTANDER, per_round
from ..analysis.stats import analyse_pair, cells_of, ratio_metric, ratio_subject
from .compare import (
    ALPHA,
    NO_DATA,
    NOT_JUDGED,
    Calibration,
    Comparison,
    adjust,
    compare_interleaved,
    metric_set,
)
from .gate import is_regression  # the gate's own rule, not a copy of it

POWER = 0.90
RESAMPLES = 2000
FORMAT = 1

Run = Mapping[str, Any]


def machine_key(run: Run) -> str:
    """Runs from one machine share it: host name, CPU model, cores and memory."""
    machine = (run.get("metadata") or {}).get("machine") or {}
    fields = [str(machine.get(k)) for k in ("hostname", "cpu_model", "cores", "memory_bytes")]
    return hashlib.sha256("|".join(fields).encode()).hexdigest()[:12]


def file_for(folder: Path, run: Run) -> Path:
    """Where the calibration of this run's machine and profile is stored."""
    return folder / f"{machine_key(run)}-{run['profile']}.json"


def lookup(run: Run, folder: Path) -> Calibration | None:
    """The between-run spreads calibrated for this run's machine and profile, if any."""
    path = file_for(folder, run)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None
    found: dict[tuple[str, str, str, str], float] = {}
    for pair, entry in (doc.get("pairs") or {}).items():
        for row in entry.get("between_run") or []:
            found[pair, row["variant"], row["knob"], row["metric"]] = float(row["log_sd"])
    return found


def between_run(runs: Sequence[Run]) -> dict[str, list[dict[str, Any]]]:
    """Per pair: each variant's, knob value's and metric's between-run sd of the log metric.

    Method of moments: the variance of the runs' mean logs, less the part the rounds inside each
    run explain (their variance over their count), floored at zero.
    """
    found: dict[str, list[dict[str, Any]]] = {}
    names = list(dict.fromkeys(n for run in runs for n in run["pairs"]))
    for name in names:
        pairs = [run["pairs"][name] for run in runs if name in run["pairs"]]
        if len(pairs) < 2:
            continue
        cells = [cells_of(p) for p in pairs]
        keys = sorted_keys(k for c in cells for k, _ in c)
        rows = []
        for variant in (v["name"] for v in pairs[0]["variants"]):
            for key in keys:
                trials = [c.get((key, variant), []) for c in cells]
                bystander = any(t.get("bystander") for ts in trials for t in ts)
                for label, metric, subject in metric_set(pairs[0], "all", bystander):
                    logs = [np.log(list(per_round(ts, metric, subject).values())) for ts in trials]
                    logs = [x for x in logs if x.size >= 2]
                    if len(logs) < 2:
                        continue
                    means = np.array([x.mean() for x in logs])
                    within = float(np.mean([x.var(ddof=1) / x.size for x in logs]))
                    variance = max(0.0, float(means.var(ddof=1)) - within)
                    rows.append(
                        {
                            "variant": variant,
                            "knob": knob_text(pairs[0], key),
                            "metric": label,
                            "log_sd": math.sqrt(variance),
                            "runs": len(logs),
                        }
                    )
        found[name] = rows
    return found


def headline_spread(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """Per pair: its headline ratio (bad / good at the expectation's knob) in each run, and their
    coefficient of variation (the run-to-run spread a single run's interval should cover)."""
    found: dict[str, dict[str, Any]] = {}
    names = list(dict.fromkeys(n for run in runs for n in run["pairs"]))
    for name in names:
        pairs = [run["pairs"][name] for run in runs if name in run["pairs"]]
        analyses = [analyse_pair(p) for p in pairs]
        key = expectation_knob_key(pairs[-1])
        good = best_good(pairs[-1], analyses[-1], key) if key is not None else None
        if key is None or good is None:
            continue
        rows = [(a.get("ratios", {}).get(key) or {}).get(good) or {} for a in analyses]
        ratios = [r["bad_over_good"] for r in rows if r.get("bad_over_good")]
        inside = sum(
            1
            for i, ri in enumerate(rows)
            for j, rj in enumerate(rows)
            if i != j
            and ri.get("ci_low") is not None
            and rj.get("bad_over_good") is not None
            and ri["ci_low"] <= rj["bad_over_good"] <= ri["ci_high"]
        )
        pairs_compared = len(rows) * (len(rows) - 1)
        found[name] = {
            "good": good,
            "knob": knob_text(pairs[-1], key),
            "metric": ratio_metric(pairs[-1]),
            "subject": ratio_subject(pairs[-1]),
            "ratios": ratios,
            "intervals": [[r.get("ci_low"), r.get("ci_high")] for r in rows],
            "cv": float(np.std(ratios, ddof=1) / np.mean(ratios)) if len(ratios) >= 2 else None,
            "rerun_inside": [inside, pairs_compared],
        }
    return found


def detectable_slowdown(
    log_sd: float, rounds: int, family: int, min_effect: float, alpha: float = ALPHA
) -> float | None:
    """The smallest slowdown (1.08 = 8%) the gate detects with 90% power in one comparison.

    The gate needs the paired t-test significant after the false-discovery adjustment (for one
    real change among `family` comparisons, p below alpha / family) and an estimate of at least
    1 + min_effect: the larger of the two effects that reach each with 90% power.
    """
    if rounds < 2 or not math.isfinite(log_sd):
        return None
    if log_sd <= 0.0:
        return 1.0 + min_effect
    df, se = rounds - 1, log_sd / math.sqrt(rounds)
    critical = float(scipy_stats.t.ppf(1.0 - alpha / family / 2.0, df))
    low, high = 0.0, 50.0  # in standard errors
    for _ in range(80):
        middle = (low + high) / 2.0
        if float(scipy_stats.nct.sf(critical, df, middle)) >= POWER:
            high = middle
        else:
            low = middle
    by_test = high * se
    by_estimate = math.log1p(min_effect) + float(scipy_stats.t.ppf(POWER, df)) * se
    return math.exp(max(by_test, by_estimate))


def interleaved_noise(
    run: Run, min_effect: float, alpha: float = ALPHA, seed: int = 0
) -> dict[str, Any]:
    """From an interleaved A/A run: per gated comparison the per-round sd of the paired log
    ratio and the slowdown detectable with 90% power; and the gate's false-alarm rate over
    sign-flips of the rounds (`_resampled_alarms`)."""
    comparisons = [c for c in compare_interleaved(run, alpha=alpha) if c.verdict != NO_DATA]
    judged = [c for c in comparisons if c.verdict != NOT_JUDGED]
    family = max(1, len(judged))
    rows = []
    logs_by_cell: dict[tuple[str, str, str, str], dict[int, float]] = {}
    for c in judged:
        by_round = _paired_logs(run, c)
        logs_by_cell[c.pair, c.variant, c.knob, c.metric] = by_round
        logs = np.array(list(by_round.values()))
        sd = float(logs.std(ddof=1)) if logs.size >= 2 else None
        mde = (
            None
            if sd is None
            else detectable_slowdown(sd, int(logs.size), family, min_effect, alpha)
        )
        rows.append(
            {
                "pair": c.pair,
                "variant": c.variant,
                "knob": c.knob,
                "metric": c.metric,
                "rounds": int(logs.size),
                "ratio": c.ratio,
                "ci": [c.ci_low, c.ci_high],
                "log_sd": sd,
                "detectable_slowdown": mde,
                "flagged": is_regression(c, min_effect),
            }
        )
    alarms, patterns = _resampled_alarms(judged, logs_by_cell, min_effect, alpha, seed)
    return {
        "comparisons": rows,
        "family": family,
        "false_alarm_rate": alarms,
        "patterns": patterns,
        "not_judged": [c.note for c in comparisons if c.verdict == NOT_JUDGED],
    }


def _paired_logs(run: Run, c: Comparison) -> dict[int, float]:
    """Round -> log(new / base) of one comparison."""
    metric, subject = _metric_of(c.metric)
    sides = []
    for pair in (run["pairs"][c.pair], run["baseline"]["pairs"][c.pair]):
        trials = next(
            (
                ts
                for (k, v), ts in cells_of(pair).items()
                if v == c.variant and knob_text(pair, k) == c.knob
            ),
            [],
        )
        sides.append(per_round(trials, metric, subject))
    new, base = sides
    common = sorted(new.keys() & base.keys())
    return {r: math.log(new[r] / base[r]) for r in common}


def _metric_of(label: str) -> tuple[str, Any]:
    if label.startswith("bystander "):
        return label.removeprefix("bystander "), BYSTANDER
    return label, "variant"


def _resampled_alarms(
    judged: Sequence[Comparison],
    logs_by_cell: Mapping[tuple[str, str, str, str], dict[int, float]],
    min_effect: float,
    alpha: float,
    seed: int,
) -> tuple[float | None, int]:
    """Share of sign-flipped A/A gates with at least one regression flagged.

    Under A/A the two sides of a round are exchangeable: swapping them flips the sign of that
    round's log ratio in every comparison at once. Redoing the whole gate for every pattern of
    swaps (all 2^rounds of them, or RESAMPLES drawn at random when there are more) gives the
    gate's false-alarm rate on this machine's noise, whatever its shape, with no assumption of
    normality (a randomization test of the rule itself).
    """
    rounds = sorted({r for logs in logs_by_cell.values() for r in logs})
    if not judged or not rounds:
        return None, 0
    rng = np.random.default_rng(seed)
    if 2 ** len(rounds) <= RESAMPLES:
        patterns = [
            [1.0 if (bits >> i) & 1 else -1.0 for i in range(len(rounds))]
            for bits in range(2 ** len(rounds))
        ]
    else:
        patterns = [list(rng.choice([-1.0, 1.0], size=len(rounds))) for _ in range(RESAMPLES)]
    alarms = 0
    for pattern in patterns:
        sign = dict(zip(rounds, pattern, strict=True))
        redone = []
        for c in judged:
            logs = logs_by_cell[c.pair, c.variant, c.knob, c.metric]
            if len(logs) < 2:
                continue
            redone.append(_from_logs(c, np.array([sign[r] * v for r, v in logs.items()])))
        if any(is_regression(c, min_effect) for c in adjust(redone, alpha)):
            alarms += 1
    return alarms / len(patterns), len(patterns)


def _from_logs(c: Comparison, logs: NDArray[np.float64]) -> Comparison:
    estimate = ratio_with_ci(list(np.exp(logs)), [1.0] * logs.size)
    return replace(
        c,
        ratio=estimate.ratio,
        ci_low=estimate.ci_low,
        ci_high=estimate.ci_high,
        p_value=estimate.p_value,
        p_adjusted=None,
    )


def document(
    aa_run: Run | None,
    separate: Sequence[Run],
    min_effect: float,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """The stored calibration: machine, profile, and per pair what the A/A runs showed."""
    reference = aa_run if aa_run is not None else separate[0]
    noise = interleaved_noise(aa_run, min_effect, alpha) if aa_run is not None else None
    spread = headline_spread(separate) if len(separate) >= 2 else {}
    between = between_run(separate) if len(separate) >= 2 else {}
    names = list(reference["pairs"])
    pairs: dict[str, Any] = {}
    for name in names:
        rows = [r for r in (noise or {}).get("comparisons", []) if r["pair"] == name]
        pairs[name] = {
            "interleaved": rows,
            "headline_spread": spread.get(name),
            "between_run": between.get(name, []),
        }
    return {
        "format": FORMAT,
        "machine_key": machine_key(reference),
        "machine": (reference.get("metadata") or {}).get("machine"),
        "profile": reference["profile"],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "min_effect": min_effect,
        "alpha": alpha,
        "interleaved_run": aa_run["run_id"] if aa_run is not None else None,
        "separate_runs": [r["run_id"] for r in separate],
        "family": (noise or {}).get("family"),
        "false_alarm_rate": (noise or {}).get("false_alarm_rate"),
        "patterns": (noise or {}).get("patterns"),
        "not_judged": (noise or {}).get("not_judged", []),
        "pairs": pairs,
    }


def store(doc: Mapping[str, Any], folder: Path, run: Run) -> Path:
    """Write the calibration where `lookup` finds it for runs of this machine and profile."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(file_for(folder, run), json.dumps(doc, indent=2, allow_nan=False))
