"""One pair's section of report.md: finding, status lines, tables and figures."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import markdown
from .findings import pair_finding
from .formatting import fmt_interval, fmt_number, fmt_p, fmt_ratio
from .knobs import knob_key, knob_text
from .stats import valid_trials

PASSED_WORDS = {True: "passed", False: "FAILED", None: "not judged"}

Pair = Mapping[str, Any]


def pair_section(name: str, pair: Pair, analysis: Mapping[str, Any], images: Sequence[Path]) -> str:
    """The markdown section of one pair; image paths are linked relative to the report."""
    parts = [
        f"## {pair['title']} (`{name}`)",
        pair.get("description", ""),
        f"**Finding:** {pair_finding(pair, analysis)}",
        "\n".join(
            f"- {line}"
            for line in (
                verification_line(pair),
                expectation_line(analysis),
                trials_line(pair),
                load_line(pair),
            )
        ),
        "### Measurements",
        measurements_table(pair, analysis),
        f"### Ratios: {pair['bad']} / other variant, median of per-round ratios",
        ratios_table(pair, analysis),
        "### Figures",
        figures(images),
    ]
    return "\n\n".join(part for part in parts if part)


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
    return (
        f"Load: {load.get('model', '?')} model, {load.get('users', '?')} users, "
        f"{load.get('warmup_seconds', '?')} s warm-up, {load.get('rounds', '?')} rounds of "
        f"{load.get('round_seconds', '?')} s per variant and knob value"
    )


def measurements_table(pair: Pair, analysis: Mapping[str, Any]) -> str:
    """Knob value x variant: p50, p99, throughput, queries per request, requests."""
    rows = [
        (
            knob_text(pair, key),
            variant,
            fmt_number(cell["p50_ms"]),
            fmt_number(cell["p99_ms"]),
            fmt_number(cell["rps"]),
            fmt_number(cell["queries_per_request"]),
            f"{cell['count']:,}",
            cell["rounds"],
        )
        for key, cells in analysis["per_variant"].items()
        for variant, cell in cells.items()
    ]
    headers = ["knob", "variant", "p50 (ms)", "p99 (ms)", "req/s", "queries/req", "requests"]
    return markdown.table([*headers, "rounds"], rows, numeric_from=2) if rows else "No valid data."


def ratios_table(pair: Pair, analysis: Mapping[str, Any]) -> str:
    """Knob value x other variant: median ratio, 95% CI, Mann-Whitney p, rounds."""
    rows = [
        (
            knob_text(pair, key),
            f"{pair['bad']} / {variant}",
            ratio["metric"],
            fmt_ratio(ratio["bad_over_good"]),
            fmt_interval(ratio["ci_low"], ratio["ci_high"]),
            fmt_p(ratio["p_value"]),
            ratio["rounds"],
        )
        for key, at_knob in analysis["ratios"].items()
        for variant, ratio in at_knob.items()
    ]
    headers = ["knob", "bad / other", "metric", "median", "95% CI", "p", "rounds"]
    return markdown.table(headers, rows, numeric_from=3) if rows else "No paired rounds."


def figures(images: Sequence[Path]) -> str:
    """SVGs inline, PNGs linked (for viewers that do not show SVG)."""
    svgs = [markdown.image(p.stem, p.name) for p in images if p.suffix == ".svg"]
    pngs = [markdown.link(p.stem, p.name) for p in images if p.suffix == ".png"]
    return "\n\n".join([*svgs, "PNG: " + " · ".join(pngs)] if pngs else svgs)


def _check_text(pair: Pair, check: Mapping[str, Any]) -> str:
    where = [str(check["variant"])] if check.get("variant") else []
    if check.get("knob") is not None:
        where.append(knob_text(pair, knob_key(check["knob"])))
    suffix = f" ({', '.join(where)})" if where else ""
    return f"{check.get('name', '?')}{suffix}: {check.get('detail', '')}"
