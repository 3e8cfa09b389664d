"""Findings in words, computed from an analysis: the titles of figures and the report's lines."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..report.formatting import fmt_interval, fmt_ms, fmt_p, fmt_ratio
from .bystander import bystander_name
from .expectation import best_good, good_variants
from .knobs import expectation_knob_key, knob_text
from .rounds import BYSTANDER

# A good variant whose p50 changes less than this across the sweep "stays flat".
FLAT_GROWTH_LIMIT = 2.0
NO_DATA = "no valid measurements"
GROWTH_METRIC = "p50_ms"
TAIL_METRIC = "p99_ms"

Analysis = Mapping[str, Any]


def growth(analysis: Analysis, variant: str) -> tuple[str, str, float] | None:
    """(first key, last key, p50 at last / p50 at first) over the knob values that have data."""
    points = [
        (key, cells[variant][GROWTH_METRIC])
        for key, cells in analysis["per_variant"].items()
        if variant in cells and cells[variant][GROWTH_METRIC]
    ]
    if len(points) < 2:
        return None
    (first, low), (last, high) = points[0], points[-1]
    return first, last, high / low


def scaling_finding(pair: Mapping[str, Any], analysis: Analysis) -> str:
    """E.g. `lazy p50 grows 38x from n=1 to n=200; join stays flat (1.4x across the sweep)`."""
    bad = pair["bad"]
    bad_growth = growth(analysis, bad)
    if bad_growth is None:
        keys = list(analysis["per_variant"])
        return ratio_finding(pair, analysis, keys[-1]) if keys else NO_DATA
    first, last, factor = bad_growth
    verb = "grows" if factor >= 1 else "shrinks to"
    sentence = (
        f"{bad} p50 {verb} {fmt_ratio(factor)} from {knob_text(pair, first)} "
        f"to {knob_text(pair, last)}"
    )
    goods = {g: growth(analysis, g) for g in good_variants(pair)}
    factors = {g: found[2] for g, found in goods.items() if found is not None}
    if not factors:
        return sentence
    if all(f < FLAT_GROWTH_LIMIT for f in factors.values()):
        names = " and ".join(factors)
        verb = "stays" if len(factors) == 1 else "stay"
        # "within 0.6x" reads as nonsense: a p50 that fell across the sweep simply stayed flat.
        widest = max(factors.values(), key=lambda f: max(f, 1 / f))
        return f"{sentence}; {names} {verb} flat ({fmt_ratio(widest)} across the sweep)"
    grown = ", ".join(f"{g} grows {fmt_ratio(f)}" for g, f in factors.items())
    return f"{sentence}; {grown}"


def ratio_finding(pair: Mapping[str, Any], analysis: Analysis, key: str) -> str:
    """E.g. `at n=200 join's p50 is 38x lower than lazy's (95% CI 35x–41x, p=0.029)`.

    With a bystander subject: `at ms=100 /work/ping's p99 under offloaded is 90x lower than
    under inline (...)`.
    """
    best = best_good(pair, analysis, key)
    if best is None:
        return f"at {knob_text(pair, key)} no valid rounds to compare"
    ratio = analysis["ratios"][key][best]
    gap = f"{fmt_ratio(ratio['bad_over_good'])} lower"
    if ratio.get("subject") == BYSTANDER:
        claim = (
            f"{bystander_name(pair)}'s {ratio['metric']} under {best} is {gap} "
            f"than under {pair['bad']}"
        )
    else:
        claim = f"{best}'s {ratio['metric']} is {gap} than {pair['bad']}'s"
    return (
        f"at {knob_text(pair, key)} {claim} "
        f"(95% CI {fmt_interval(ratio['ci_low'], ratio['ci_high'])}, "
        f"p={fmt_p(ratio['p_value'])}, {ratio['rounds']} rounds)"
    )


def spectrum_finding(pair: Mapping[str, Any], analysis: Analysis, key: str) -> str:
    """E.g. `at n=200 lazy p99 is 41 ms vs 1.02 ms for join (40x)`."""
    cells = analysis["per_variant"].get(key, {})
    bad = pair["bad"]
    if bad not in cells:
        return NO_DATA
    bad_tail = cells[bad][TAIL_METRIC]
    others = [g for g in good_variants(pair) if g in cells and cells[g][TAIL_METRIC]]
    where = f"at {knob_text(pair, key)} {bad} p99 is {fmt_ms(bad_tail)}"
    if not others or bad_tail is None:
        return where
    best = min(others, key=lambda name: cells[name][TAIL_METRIC])
    good_tail = cells[best][TAIL_METRIC]
    return f"{where} vs {fmt_ms(good_tail)} for {best} ({fmt_ratio(bad_tail / good_tail)})"


def bystander_finding(pair: Mapping[str, Any], analysis: Analysis) -> str:
    """E.g. `at ms=50 /work/ping p99 is 201 ms under blocking vs 0.52 ms under offloaded (390x)`."""
    bad = pair["bad"]
    keys = [
        k
        for k, cells in analysis["per_variant"].items()
        if ((cells.get(bad) or {}).get("bystander") or {}).get(TAIL_METRIC)
    ]
    if not keys:
        return NO_DATA
    key = keys[-1]
    cells = analysis["per_variant"][key]
    bad_tail = cells[bad]["bystander"][TAIL_METRIC]
    where = (
        f"at {knob_text(pair, key)} {bystander_name(pair)} p99 is {fmt_ms(bad_tail)} under {bad}"
    )
    others = {
        name: cells[name]["bystander"][TAIL_METRIC]
        for name in good_variants(pair) or [n for n in cells if n != bad]
        if name in cells and (cells[name].get("bystander") or {}).get(TAIL_METRIC)
    }
    if not others:
        return where
    best = min(others, key=lambda name: others[name])
    return f"{where} vs {fmt_ms(others[best])} under {best} ({fmt_ratio(bad_tail / others[best])})"


def pair_finding(pair: Mapping[str, Any], analysis: Analysis) -> str:
    """The report's one-sentence finding: the scaling and the ratio at the largest knob value."""
    keys = list(analysis["per_variant"])
    if not keys:
        return f"{pair['title']}: {NO_DATA}."
    ratio = ratio_finding(pair, analysis, keys[-1])
    if (pair.get("expectation") or {}).get("subject") == BYSTANDER:
        # The variants' own latencies are not the point here: the damage to others is.
        return f"{pair['title']}: {bystander_finding(pair, analysis)}; {ratio}."
    scaling = scaling_finding(pair, analysis)
    if growth(analysis, pair["bad"]) is None:
        return f"{pair['title']}: {scaling}."
    return f"{pair['title']}: {scaling}; {ratio}."


# Knob values this close count as the published one's point (990,000 rows deep for "~1M").
SAME_KNOB_TOLERANCE = 0.05


def headline_ratio(
    pair: Mapping[str, Any], analysis: Analysis
) -> tuple[str, str, Mapping[str, Any]] | None:
    """(knob key, best good variant, ratio record) of bad / best good where the expectation is
    judged (or the largest knob value with ratios); None when no round compares them. The
    report's findings and the deck's slides quote this one ratio."""
    key = expectation_knob_key(pair)
    if key is None or key not in analysis["ratios"]:
        key = next(reversed(analysis["ratios"]), None)
    best = best_good(pair, analysis, key) if key is not None else None
    if key is None or best is None:
        return None
    return key, best, analysis["ratios"][key][best]


def _ours(pair: Mapping[str, Any], analysis: Analysis) -> str:
    found = headline_ratio(pair, analysis)
    if found is None:
        return "no comparable rounds"
    key, _, ratio = found
    interval = ""
    if ratio["ci_low"] is not None and ratio["ci_high"] is not None:
        low, high = fmt_ratio(ratio["ci_low"]), fmt_ratio(ratio["ci_high"])
        interval = f" [{low.rstrip('x')}, {high.rstrip('x')}]"
    return f"{fmt_ratio(ratio['bad_over_good'])}{interval} at {knob_text(pair, key)}"


def reference_finding(pair: Mapping[str, Any], analysis: Analysis) -> str | None:
    """E.g. `ours: 6.1x [5.9, 6.6] at n=200; published: about 4x (SQLAlchemy's examples/performance)`;
    None when the pair names no published figure."""
    reference = pair.get("reference")
    if not reference:
        return None
    where = str(reference.get("source") or "")
    if reference.get("url"):
        where = f"{where}, {reference['url']}" if where else str(reference["url"])
    return f"ours: {_ours(pair, analysis)}; published: {reference['figure']} ({where})"


def reference_standing(name: str, pair: Mapping[str, Any], analysis: Analysis) -> str | None:
    """Where our ratio stands against the published one, for the report's summary; None
    without a reference. Above or below only when our 95% interval excludes it."""
    reference = pair.get("reference")
    if not reference:
        return None
    head = f"`{name}`: ours {_ours(pair, analysis)}, published {reference['figure']}"
    published = reference.get("ratio")
    found = headline_ratio(pair, analysis)
    if published is None or found is None:
        return f"{head}: no number to set them against"
    key, _, ratio = found
    at = reference.get("knob")
    if at is not None and not math.isclose(float(key), float(at), rel_tol=SAME_KNOB_TOLERANCE):
        # A ratio that grows with the knob is compared only at the point it was published at.
        return (
            f"{head}: published at {knob_text(pair, float(at))}, ours at {knob_text(pair, key)};"
            " not the same point, no comparison"
        )
    low, high = ratio["ci_low"], ratio["ci_high"]
    if low is None or high is None:
        return f"{head}: too few rounds for an interval to compare"
    factor = fmt_ratio(ratio["bad_over_good"] / float(published))
    if low > published:
        return f"{head}: above the published figure ({factor} of it, beyond our interval)"
    if high < published:
        return f"{head}: below the published figure ({factor} of it, beyond our interval)"
    return f"{head}: in line with it (our 95% interval includes {fmt_ratio(float(published))})"
