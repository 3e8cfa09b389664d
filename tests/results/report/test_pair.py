"""One pair's report section: status lines in words."""

from __future__ import annotations

import copy

from pairbench.results.report.pair import expectation_line, trials_line, verification_line


def test_failed_checks_are_listed_with_where_and_why(demo_run: dict) -> None:
    pair = copy.deepcopy(demo_run["pairs"]["demo"])
    pair["verification"] = {
        "passed": False,
        "checks": [
            {
                "name": "same body",
                "knob": 100,
                "variant": "join",
                "passed": False,
                "detail": "row 3 differs",
            },
            {"name": "queries", "knob": None, "variant": None, "passed": True, "detail": ""},
        ],
    }
    assert verification_line(pair) == (
        "Verification: FAILED (2 checks); failed: same body (join, n=100): row 3 differs"
    )


def test_unjudged_expectation_and_clean_trials(demo_run: dict) -> None:
    analysis = {"expectation": {"passed": None, "detail": "no valid data at n=100 for join"}}
    assert expectation_line(analysis) == (
        "Expectation: not judged — no valid data at n=100 for join"
    )
    assert trials_line(demo_run["pairs"]["demo"]) == "Trials: 36 measured, 0 invalid"
