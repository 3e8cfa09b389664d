"""The expectation check: at one knob value every good variant beats the bad one by min_ratio."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..report.formatting import fmt_ratio
from .knobs import expectation_knob_key, knob_text

GOOD_ROLE = "good"


def good_variants(pair: Mapping[str, Any]) -> list[str]:
    """Names of the variants whose role is `good`, in the pair's order."""
    return [v["name"] for v in pair["variants"] if v.get("role") == GOOD_ROLE]


def best_good(pair: Mapping[str, Any], analysis: Mapping[str, Any], key: str) -> str | None:
    """The good variant that beats the bad one by the most at a knob key; None without one.

    Good variants only: a middle one is a step on the way, never the fix a headline quotes
    (the one definition; the report, the forest plot and the CLI summary all use it).
    """
    at_knob = analysis["ratios"].get(key, {})
    candidates = [g for g in good_variants(pair) if (at_knob.get(g) or {}).get("bad_over_good")]
    if not candidates:
        return None
    return max(candidates, key=lambda name: at_knob[name]["bad_over_good"])


def check_expectation(
    pair: Mapping[str, Any], ratios: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """`{"passed": bool | None, "detail": str}`; passed is None when nothing can be judged."""
    expectation = pair.get("expectation")
    if not expectation:
        return _verdict(None, "no expectation declared")
    key = expectation_knob_key(pair)
    goods = good_variants(pair)
    if key is None or not goods:
        return _verdict(None, "no knob values or no good variant to check")
    metric = expectation.get("metric", "p50")
    minimum = float(expectation["min_ratio"])
    where = knob_text(pair, key)
    at_knob = ratios.get(key, {})
    measured = {g: at_knob[g]["bad_over_good"] for g in goods if g in at_knob}
    missing = [g for g in goods if measured.get(g) is None]
    if missing:
        return _verdict(None, f"no valid data at {where} for {', '.join(missing)}")
    shortfalls = [g for g in goods if measured[g] < minimum]
    # min_ratio is the claim in the scenario; the measured ratios are what backs or refutes it.
    listing = ", ".join(f"{g} {fmt_ratio(measured[g])}" for g in goods)
    # A bystander expectation compares the cheap endpoint's latency under each variant.
    subject = "bystander " if expectation.get("subject") == "bystander" else ""
    claim = f"{subject}{metric} of {pair['bad']} / good >= {fmt_ratio(minimum)} at {where}"
    if shortfalls:
        return _verdict(False, f"expected {claim}; measured {listing}")
    return _verdict(True, f"{claim}: {listing}")


def _verdict(passed: bool | None, detail: str) -> dict[str, Any]:
    return {"passed": passed, "detail": detail}
