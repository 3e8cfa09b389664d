"""One pair's section of the report: finding, status lines, tables and figures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..analysis.bystander import bystander_name
from ..analysis.findings import pair_finding, reference_finding
from ..analysis.knobs import knob_text
from ..analysis.stats import valid_trials
from ..analysis.trend import trend_line
from . import tables
from .document import Block, Bullets, Figures, Heading, Text

PASSED_WORDS = {True: "passed", False: "FAILED", None: "not judged"}

Pair = Mapping[str, Any]


def pair_blocks(
    name: str, pair: Pair, analysis: Mapping[str, Any], images: Sequence[Path]
) -> list[Block]:
    """One pair's section: finding, status lines, tables and figures."""
    blocks: list[Block] = [
        Heading(f"{pair['title']} (`{name}`)", 2),
        Text(pair.get("description", "")),
        Text(f"**Finding:** {pair_finding(pair, analysis)}"),
        Bullets(
            [
                verification_line(pair),
                expectation_line(analysis),
                *filter(None, [trend_line(pair, analysis.get("trends") or {})]),
                *filter(None, [_reference_line(pair, analysis)]),
                trials_line(pair),
                load_line(pair),
            ]
        ),
        Heading("Measurements", 3),
        tables.measurements(pair, analysis),
    ]
    replies = tables.statuses(pair, analysis)
    if replies is not None:
        blocks += [Heading("Replies per status (load generator)", 3), replies]
    mechanism = tables.mechanism(pair, analysis)
    if mechanism is not None:
        blocks += [Heading("Mechanism (server-side counters)", 3), mechanism]
    bystander = tables.bystander(pair, analysis)
    if bystander is not None:
        blocks += [Heading(f"Bystander: {bystander_name(pair)}, loaded alongside", 3), bystander]
    return [
        *blocks,
        Heading(f"Ratios: {pair['bad']} / other variant, median of per-round ratios", 3),
        tables.ratios(pair, analysis),
        Heading("Figures", 3),
        Figures(images),
    ]


def _reference_line(pair: Pair, analysis: Mapping[str, Any]) -> str | None:
    found = reference_finding(pair, analysis)
    return None if found is None else f"Published reference: {found}"


def verification_line(pair: Pair) -> str:
    """`Verification: passed (4 checks)` or the failing checks with their details."""
    verification = pair.get("verification") or {}
    checks = verification.get("checks", [])
    failed = [c for c in checks if not c.get("passed")]
    passed = PASSED_WORDS[bool(verification.get("passed"))]
    line = f"Verification: {passed} ({len(checks)} check{'' if len(checks) == 1 else 's'})"
    if failed:
        line += "; failed: " + "; ".join(_check_text(pair, c) for c in failed)
    return line


def expectation_line(analysis: Mapping[str, Any]) -> str:
    """`Expectation: passed — <detail>`."""
    expectation = analysis["expectation"]
    return f"Expectation: {PASSED_WORDS[expectation['passed']]} — {expectation['detail']}"


def trials_line(pair: Pair) -> str:
    """How many trials were measured, and how many were invalid and why."""
    trials = pair.get("trials", [])
    invalid = len(trials) - len(valid_trials(pair))
    line = f"Trials: {len(trials)} measured, {invalid} invalid"
    reasons: Counter[str] = Counter()
    for trial in trials:
        if trial.get("valid") is not True:
            reasons.update(trial.get("invalid_reasons") or ["no reason recorded"])
    if reasons:
        listed = "; ".join(f"{reason} ({count})" for reason, count in reasons.most_common())
        line += f" and excluded from every statistic: {listed}"
    return line


def load_line(pair: Pair) -> str:
    """The load model in words."""
    load = pair.get("load") or {}
    if load.get("max_rounds") is not None:  # adaptive: what ran is in `stopping`
        ran = sorted(
            {s["rounds"] for s in ((pair.get("stopping") or {}).get("knobs") or {}).values()}
        )
        counts = f"{ran[0]}-{ran[-1]}" if len(ran) > 1 else (str(ran[0]) if ran else "?")
        rounds = (
            f"{counts} rounds (adaptive: {load.get('min_rounds')} to {load['max_rounds']}, until "
            f"every judged interval is within +-{load.get('precision', 0):.0%})"
        )
    else:
        rounds = f"{load.get('rounds', '?')} rounds"
    return (
        f"Load: {load.get('model', '?')} model, {load.get('users', '?')} users, "
        f"{load.get('warmup_seconds', '?')} s warm-up, {rounds} of "
        f"{load.get('round_seconds', '?')} s per variant and knob value"
    )


def _check_text(pair: Pair, check: Mapping[str, Any]) -> str:
    where = [str(check["variant"])] if check.get("variant") else []
    if check.get("knob") is not None:
        where.append(knob_text(pair, check["knob"]))
    suffix = f" ({', '.join(where)})" if where else ""
    return f"{check.get('name', '?')}{suffix}: {check.get('detail', '')}"
