"""A version 1 run reads on: the real fixture loads, gets counter metadata, analyses, renders."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.figures.mechanism import mechanism_finding
from pairbench.results.io.runfile import load_run
from pairbench.results.io.upgrade import V1_COUNTERS, upgrade_pair
from pairbench.results.report.render import HTML_FILE, REPORT_FILE, render

WINDOW_SKEW = 0.05
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "run-v1"


@pytest.fixture(scope="module")
def v1_run() -> dict[str, Any]:
    return load_run(FIXTURE)


def _only_pair(run: dict[str, Any]) -> str:
    """The name of the fixture's one pair: a real run's, so it is read, never written here."""
    (name,) = run["pairs"]
    return str(name)


def test_the_fixture_is_version_1_and_gets_counter_metadata(v1_run: dict[str, Any]) -> None:
    assert v1_run["schema_version"] == 1
    pair = v1_run["pairs"][_only_pair(v1_run)]
    reported = {name for t in pair["trials"] for name in t["counters"]}
    assert set(pair["counters"]) == reported <= set(V1_COUNTERS)
    # The panels version 1 drew, in its order; helper counters are described, not drawn.
    assert pair["lesson"] == [
        "queries",
        "db_connections_opened",
        "cache_hits",
        "loop_lag_seconds_sum",
    ]


def test_the_fixture_analyses_with_the_statement_counts(v1_run: dict[str, Any]) -> None:
    pair = v1_run["pairs"][_only_pair(v1_run)]
    analysis = analyse_pair(pair)
    assert list(analysis["per_variant"]) == ["1", "50"]
    cells = analysis["per_variant"]["50"]
    # The scenario's mechanism: lazy sends 1 + N statements, join 1, batched 2. The server's
    # counter and the client's request count close their windows a few requests apart.
    assert cells["lazy"]["mechanism"]["queries"] == pytest.approx(51.0, rel=WINDOW_SKEW)
    assert cells["join"]["mechanism"]["queries"] == pytest.approx(1.0, rel=WINDOW_SKEW)
    assert cells["batched"]["mechanism"]["queries"] == pytest.approx(2.0, rel=WINDOW_SKEW)
    assert mechanism_finding(pair, analysis) == (
        "50.1 SQL statements per request vs 2.01 (batched) at n=50"
    )
    assert set(analysis["ratios"]["50"]) == {"join", "batched", "dataloader"}


def test_the_fixture_re_renders(v1_run: dict[str, Any], tmp_path: Path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(FIXTURE, folder)
    written = {p.name for p in render(folder)}
    mechanism = f"{_only_pair(v1_run)}-mechanism.png"
    assert {REPORT_FILE, HTML_FILE, mechanism, "forest.svg"} <= written
    report = (folder / REPORT_FILE).read_text(encoding="utf-8")
    assert "SQL statements / request" in report


def test_a_pair_that_declares_counters_is_left_alone() -> None:
    declared = {"rows": {"label": "rows", "unit": "rows", "per": "request"}}
    pair = {"counters": declared, "lesson": ["rows"], "trials": []}
    assert upgrade_pair(pair) == pair
    assert upgrade_pair({"counters": declared, "trials": []})["lesson"] == ["rows"]
