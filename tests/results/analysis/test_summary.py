"""summary_lines: bad / best good per pair and knob value, for a compact CLI table."""

from __future__ import annotations

from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.analysis.summary import summary_lines


def test_summary_lines_give_bad_over_best_good_per_knob(demo_run: dict) -> None:
    rows = summary_lines(demo_run)
    assert [(r.pair, r.knob, r.bad, r.good) for r in rows] == [
        ("demo", f"n={n}", "lazy", "join") for n in (1, 10, 100)
    ]
    ratios = analyse_pair(demo_run["pairs"]["demo"])["ratios"]
    assert [r.ratio for r in rows] == [
        ratios[k]["join"]["bad_over_good"] for k in ("1", "10", "100")
    ]
    assert all(r.rounds == 4 for r in rows)
