"""render(): every figure, report.md and a self-contained report.html, from run.json alone."""

from __future__ import annotations

import base64
import copy
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.analysis.summary import analyse_run
from pairbench.results.report.formatting import (
    fmt_interval,
    fmt_ms,
    fmt_number,
    fmt_p,
    fmt_ratio,
)
from pairbench.results.report.render import render, report_markdown

KINDS = {
    "demo": ("scaling", "spectrum", "mechanism", "timeline"),
    "busy": ("scaling", "spectrum", "mechanism", "bystander", "timeline"),
}


class RenderedRun(NamedTuple):
    folder: Path
    paths: list[Path]
    run_json: bytes  # run.json's bytes before rendering


class References(HTMLParser):
    """Every URL-carrying attribute and every <script> of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.scripts = 0
        self.images = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.images += tag == "img"
        for name, value in attrs:
            if name in {"src", "href", "srcset", "data", "poster"} and value is not None:
                self.urls.append((tag, name, value))


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory, synth: Any, two_pair_run: dict
) -> RenderedRun:
    folder = tmp_path_factory.mktemp("runs") / two_pair_run["run_id"]
    run_file = synth.write(folder, two_pair_run)
    before = run_file.read_bytes()
    return RenderedRun(folder, render(folder), before)


@pytest.fixture(scope="module")
def report(rendered: RenderedRun) -> str:
    return (rendered.folder / "report.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(rendered: RenderedRun) -> str:
    return (rendered.folder / "report.html").read_text(encoding="utf-8")


def test_render_writes_every_figure_and_both_reports(rendered: RenderedRun) -> None:
    expected = {
        f"{pair}-{kind}.{extension}"
        for pair, kinds in KINDS.items()
        for kind in kinds
        for extension in ("png", "svg")
    }
    expected |= {"forest.png", "forest.svg", "report.md", "report.html"}
    assert {p.name for p in rendered.paths} == expected
    assert all(p.parent == rendered.folder and p.stat().st_size > 0 for p in rendered.paths)
    assert (rendered.folder / "run.json").read_bytes() == rendered.run_json  # never rewritten


def test_report_contains_the_numbers(report: str, two_pair_run: dict) -> None:
    analysis = analyse_pair(two_pair_run["pairs"]["demo"])
    lazy = analysis["per_variant"]["100"]["lazy"]
    ratio = analysis["ratios"]["100"]["join"]
    row = (
        f"| n=100 | lazy | {fmt_number(lazy['p50_ms'])} | {fmt_number(lazy['p99_ms'])} | "
        f"{fmt_number(lazy['rps'])} | 1,200 | 4 |"
    )
    assert row in report
    assert "| n=100 | lazy | 101 | 0.0500 |" in report  # mechanism: queries, loop lag
    assert (
        f"| n=100 | lazy / join | p50 | {fmt_ratio(ratio['bad_over_good'])} | "
        f"{fmt_interval(ratio['ci_low'], ratio['ci_high'])} | {fmt_p(ratio['p_value'])} | 4 |"
    ) in report
    assert "**Finding:** N+1 queries: lazy p50 grows" in report
    assert "- Verification: passed (1 check)" in report
    assert "- Expectation: passed" in report
    assert "- Trials: 36 measured, 0 invalid" in report
    assert "![demo-scaling](demo-scaling.svg)" in report
    assert "[demo-spectrum](demo-spectrum.png)" in report
    assert "![forest](forest.svg)" in report


def test_report_has_the_bystander_and_its_finding(report: str, two_pair_run: dict) -> None:
    analysis = analyse_pair(two_pair_run["pairs"]["busy"])
    inline = analysis["per_variant"]["50"]["inline"]["bystander"]
    assert "### Bystander: /busy/ping, loaded alongside" in report
    assert (
        f"| ms=50 | inline | {fmt_number(inline['p50_ms'])} | {fmt_number(inline['p99_ms'])} | "
        f"{inline['count']:,} | 0 |"
    ) in report
    assert "**Finding:** CPU work on the event loop: at ms=50 /busy/ping p99 is " in report
    assert f"{fmt_ms(inline['p99_ms'])} under inline" in report
    assert "| ms=50 | inline / process | bystander p99 |" in report


def test_html_is_self_contained(page: str, rendered: RenderedRun) -> None:
    parser = References()
    parser.feed(page)
    assert parser.scripts == 0
    pngs = [p for p in rendered.paths if p.suffix == ".png"]
    assert parser.images == len(pngs)
    assert parser.urls and all(
        attribute == "src" and value.startswith("data:image/png;base64,")
        for _, attribute, value in parser.urls
    )
    # The embedded images are the figures' bytes, not links to them.
    embedded = {base64.b64decode(value.split(",", 1)[1]) for _, _, value in parser.urls}
    assert embedded == {p.read_bytes() for p in pngs}
    assert "<style>" in page and not re.search(r"<link\b|@import|url\(", page)


def test_html_contains_the_numbers(page: str, two_pair_run: dict) -> None:
    analysis = analyse_pair(two_pair_run["pairs"]["demo"])
    lazy = analysis["per_variant"]["100"]["lazy"]
    ratio = analysis["ratios"]["100"]["join"]
    assert "<h1>pairbench run <code>20250101-120000-demo-busy</code></h1>" in page
    assert f"<td class=num>{fmt_number(lazy['p50_ms'])}</td>" in page
    assert f"<td class=num>{fmt_ratio(ratio['bad_over_good'])}</td>" in page
    assert "<p><strong>Finding:</strong> N+1 queries: lazy p50 grows" in page
    assert "lazy&#x27;s" not in page and "join's p50 is" in page  # apostrophes stay readable


def test_report_counts_invalid_trials(synth: Any, demo_run: dict) -> None:
    trials = [dict(t) for t in demo_run["pairs"]["demo"]["trials"]]
    trials[0] = {**trials[0], "valid": False, "invalid_reasons": ["error ratio 0.12 > 0.01"]}
    run = synth.run({"demo": synth.pair(trials)})
    report = report_markdown(run, analyse_run(run), images={})
    assert (
        "- Trials: 36 measured, 1 invalid and excluded from every statistic: "
        "error ratio 0.12 > 0.01 (1)" in report
    )


def test_a_reproduced_run_is_shown_beside_its_original(
    tmp_path: Path, synth: Any, demo_run: dict
) -> None:
    synth.write(tmp_path / demo_run["run_id"], demo_run)
    replay = {
        **demo_run,
        "run_id": "20250102-120000-demo",
        "reproduces": demo_run["run_id"],
    }
    synth.write(tmp_path / replay["run_id"], replay)
    render(tmp_path / replay["run_id"])
    text = (tmp_path / replay["run_id"] / "report.md").read_text()
    assert f"## Reproduction of run `{demo_run['run_id']}`" in text
    section = text.split("## Reproduction")[1].split("\n## ")[0]
    assert "| demo | lazy |" in section and "no significant change" in section
    # The original alone, or a replay whose original is elsewhere: no table, a sentence.
    (tmp_path / "lonely").mkdir()
    synth.write(tmp_path / "lonely" / replay["run_id"], replay)
    render(tmp_path / "lonely" / replay["run_id"])
    lonely = (tmp_path / "lonely" / replay["run_id"] / "report.md").read_text()
    assert "no side-by-side table" in lonely


def test_a_published_reference_is_printed_beside_ours(demo_run: dict) -> None:
    run = copy.deepcopy(demo_run)
    pair = run["pairs"]["demo"]
    pair["reference"] = {
        "figure": "about 4x",
        "ratio": 4.0,
        "source": "SQLAlchemy's examples/performance",
        "url": None,
    }
    analyses = analyse_run(run)
    ratio = analyses["demo"]["ratios"]["100"]["join"]
    report = report_markdown(run, analyses, images={})
    ours = f"ours: {fmt_ratio(ratio['bad_over_good'])} ["
    assert f"- Published reference: {ours}" in report
    assert "at n=100; published: about 4x (SQLAlchemy's examples/performance)" in report
    # The summary says where our number stands: the synthetic N+1 is far beyond 4x.
    assert "Against the published figures:" in report
    assert f"- `demo`: {ours}" in report.replace("ours ", "ours: ", 1)
    assert "published about 4x: above the published figure" in report


def test_no_reference_no_reference_lines(demo_run: dict) -> None:
    report = report_markdown(demo_run, analyse_run(demo_run), images={})
    assert "published" not in report.lower()
