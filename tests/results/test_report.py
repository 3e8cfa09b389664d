"""render(): every figure and a report.md with the numbers, from run.json alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pairbench.results.formatting import fmt_interval, fmt_number, fmt_ratio
from pairbench.results.report import render
from pairbench.results.stats import analyse_pair


class RenderedRun(NamedTuple):
    folder: Path
    paths: list[Path]
    run_json: bytes  # run.json's bytes before rendering


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, synth: Any, n_plus_one_run: dict
) -> RenderedRun:
    folder = tmp_path_factory.mktemp("runs") / n_plus_one_run["run_id"]
    run_file = synth.write(folder, n_plus_one_run)
    before = run_file.read_bytes()
    return RenderedRun(folder, render(folder), before)


def test_render_writes_figures_and_report(rendered: RenderedRun) -> None:
    assert {p.name for p in rendered.paths} == {
        "n_plus_one-scaling.png",
        "n_plus_one-scaling.svg",
        "n_plus_one-spectrum.png",
        "n_plus_one-spectrum.svg",
        "report.md",
    }
    assert all(p.parent == rendered.folder and p.stat().st_size > 0 for p in rendered.paths)
    assert (rendered.folder / "run.json").read_bytes() == rendered.run_json  # never rewritten


def test_report_contains_the_numbers(rendered: RenderedRun, n_plus_one_run: dict) -> None:
    report = (rendered.folder / "report.md").read_text(encoding="utf-8")
    analysis = analyse_pair(n_plus_one_run["pairs"]["n_plus_one"])
    lazy = analysis["per_variant"]["100"]["lazy"]
    ratio = analysis["ratios"]["100"]["join"]
    row = (
        f"| n=100 | lazy | {fmt_number(lazy['p50_ms'])} | {fmt_number(lazy['p99_ms'])} | "
        f"{fmt_number(lazy['rps'])} | 101 | 1,200 | 4 |"
    )
    assert row in report
    assert (
        f"| n=100 | lazy / join | p50 | {fmt_ratio(ratio['bad_over_good'])} | "
        f"{fmt_interval(ratio['ci_low'], ratio['ci_high'])} | 0.029 | 4 |"
    ) in report
    assert "**Finding:** N+1 queries: lazy p50 grows" in report
    assert "- Verification: passed (1 check)" in report
    assert "- Expectation: passed" in report
    assert "- Trials: 36 measured, 0 invalid" in report
    assert "![n_plus_one-scaling](n_plus_one-scaling.svg)" in report
    assert "[n_plus_one-spectrum](n_plus_one-spectrum.png)" in report


def test_report_counts_invalid_trials(tmp_path: Path, synth: Any, n_plus_one_run: dict) -> None:
    trials = [dict(t) for t in n_plus_one_run["pairs"]["n_plus_one"]["trials"]]
    trials[0] = {**trials[0], "valid": False, "invalid_reasons": ["error ratio 0.12 > 0.01"]}
    run = synth.run({"n_plus_one": synth.pair(trials)})
    synth.write(tmp_path, run)
    render(tmp_path)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert (
        "- Trials: 36 measured, 1 invalid and excluded from every statistic: "
        "error ratio 0.12 > 0.01 (1)" in report
    )
