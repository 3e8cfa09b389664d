"""The deck (`pairbench report RUN --slides`): one finding per slide, self-contained, and
navigable in a real headless browser.

Runs are the synthetic two-pair run (tests/results/conftest.py: neutral pairs "demo" and "busy")
and the stored real run under tests/fixtures/run-v1, whose pair is never named here.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pairbench.results.analysis.expectation import good_variants
from pairbench.results.analysis.summary import analyse_run
from pairbench.results.figures.canvas import caption
from pairbench.results.figures.pair import FIGURES
from pairbench.results.report.formatting import fmt_interval, fmt_ratio
from pairbench.results.report.slides import (
    SLIDE_FIGURES,
    SLIDES_FILE,
    headline_of,
    write_slides,
)

from ...browser import screenshot

STORED_RUN = Path(__file__).resolve().parents[2] / "fixtures" / "run-v1"
SIXTEEN_NINTHS = 16 / 9
BROWSER_BUDGET_S = 60


class Deck(HTMLParser):
    """The slides of a deck as parsed: per section its classes, heading, image and text."""

    def __init__(self) -> None:
        super().__init__()
        self.slides: list[dict[str, Any]] = []
        self.urls: list[tuple[str, str, str]] = []
        self.scripts = 0
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.scripts += tag == "script"
        for name in ("src", "href", "srcset", "data", "poster"):
            if found.get(name) is not None:
                self.urls.append((tag, name, str(found[name])))
        if tag == "section":
            self.slides.append(
                {"class": found.get("class", ""), "title": "", "img": None, "text": ""}
            )
        elif self.slides and tag == "img":
            self.slides[-1]["img"] = found.get("src")
        self._in = tag

    def handle_data(self, data: str) -> None:
        if not self.slides:
            return
        if self._in == "h1":
            self.slides[-1]["title"] += data
        self.slides[-1]["text"] += data + " "

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def _parse(path: Path) -> Deck:
    deck = Deck()
    deck.feed(path.read_text(encoding="utf-8"))
    return deck


def _svg(data_uri: str) -> str:
    prefix = "data:image/svg+xml;base64,"
    assert data_uri.startswith(prefix), data_uri[:40]
    return base64.b64decode(data_uri[len(prefix) :]).decode("utf-8")


@pytest.fixture(scope="module")
def deck_run(tmp_path_factory: pytest.TempPathFactory, synth: Any, two_pair_run: dict) -> Path:
    folder = tmp_path_factory.mktemp("slides") / two_pair_run["run_id"]
    synth.write(folder, two_pair_run)
    return folder


@pytest.fixture(scope="module")
def deck(deck_run: Path) -> Path:
    return write_slides(deck_run)


def test_one_finding_per_slide_titled_as_its_figure(
    deck: Path, deck_run: Path, two_pair_run: dict
) -> None:
    assert deck == deck_run / SLIDES_FILE
    slides = _parse(deck).slides
    run, analyses = two_pair_run, analyse_run(two_pair_run)
    text = caption(run)
    expected = []
    for name, pair in run["pairs"].items():
        keys = list(analyses[name]["per_variant"])
        for kind in SLIDE_FIGURES:
            figure = FIGURES[kind](pair, analyses[name], keys[-1], text)
            if figure is not None:
                expected.append(" ".join(figure.get_suptitle().split()))
    findings = [s for s in slides if "finding" in s["class"]]
    # The forest plot first, then each pair's figures, titled exactly as the figures are.
    assert [s["title"] for s in findings[1:]] == expected
    assert findings[0]["title"].startswith("pairbench: the fix is faster")
    assert "title" in slides[0]["class"] and "closing" in slides[-1]["class"]
    assert slides[-1]["title"] == "How this was measured"
    # The bystander figure exists for the pair that has one only: 3 + 4 findings, the forest.
    assert len(findings) == 1 + 3 + 4


def test_each_figure_is_inlined_at_16_9(deck: Path) -> None:
    parsed = _parse(deck)
    figures = [s["img"] for s in parsed.slides if s["img"] is not None]
    assert figures and len(figures) == sum("finding" in s["class"] for s in parsed.slides)
    for data_uri in figures:
        svg = _svg(data_uri)
        width, height = (
            float(re.search(rf'{side}="([0-9.]+)pt"', svg).group(1))  # type: ignore[union-attr]
            for side in ("width", "height")
        )
        assert width / height == pytest.approx(SIXTEEN_NINTHS, rel=1e-3)
    # Self-contained: every resource is a data URI; the page fetches nothing.
    assert all(value.startswith("data:") for tag, name, value in parsed.urls if name != "href")
    assert parsed.scripts == 1  # the navigation, inline


def test_finding_slides_carry_the_ratio_interval_and_conditions(
    deck: Path, two_pair_run: dict
) -> None:
    slides = _parse(deck).slides
    analyses = analyse_run(two_pair_run)
    for name, pair in two_pair_run["pairs"].items():
        headline = headline_of(pair, analyses[name])
        assert headline is not None
        key = max(analyses[name]["ratios"], key=float)  # "max": the largest knob value
        ratios = analyses[name]["ratios"][key]
        best = max(good_variants(pair), key=lambda g: ratios[g]["bad_over_good"])
        ratio = ratios[best]
        assert headline.ratio == fmt_ratio(ratio["bad_over_good"])
        assert fmt_interval(ratio["ci_low"], ratio["ci_high"]) in headline.interval
        titled = [
            s for s in slides if "finding" in s["class"] and s["title"].startswith(pair["title"])
        ]
        assert titled and all(headline.ratio in s["text"] for s in titled)
        assert all(headline.interval in s["text"] for s in titled)
    for slide in slides:
        assert two_pair_run["run_id"] in slide["text"]
        assert "Test CPU 9000" in slide["text"]
        assert "profile " + two_pair_run["profile"] in slide["text"]
        assert "loopback" not in slide["text"]  # no server URL recorded: no link claimed


def _report(pairbench: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pairbench, "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def test_command_writes_the_deck_of_a_stored_real_run(pairbench: list[str], tmp_path: Path) -> None:
    run = tmp_path / "stored"
    shutil.copytree(STORED_RUN, run)
    result = _report(pairbench, str(run), "--slides")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(run / SLIDES_FILE)
    parsed = _parse(run / SLIDES_FILE)
    assert len(parsed.slides) >= 4
    # The stored run recorded its server's URL: the link is loopback.
    assert "loopback" in parsed.slides[1]["text"]
    assert not (run / "report.html").exists()  # the deck alone: nothing else re-rendered
    into = tmp_path / "talk"
    into.mkdir()
    result = _report(pairbench, str(run), "--slides", "--out", str(into))
    assert result.returncode == 0, result.stderr
    assert (into / SLIDES_FILE).is_file()
    named = tmp_path / "deck.html"
    assert _report(pairbench, str(run), "--slides", "--out", str(named)).returncode == 0
    assert named.read_bytes() == (into / SLIDES_FILE).read_bytes()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--out", "deck.html"), "--out names where the deck goes: give it with --slides"),
        (("--slides", "--out", "run.json/deck.html"), "is a file, not a folder"),
    ],
)
def test_bad_input_is_one_line(
    pairbench: list[str], tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    run = tmp_path / "stored"
    shutil.copytree(STORED_RUN, run)
    args = tuple(str(run / a) if a.startswith("run.json") else a for a in args)
    result = _report(pairbench, str(run), *args)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_deck_in_a_real_browser(browser: Any, deck: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    started = time.monotonic()
    slides = _parse(deck).slides
    titles = [s["title"] for s in slides]

    def shown() -> tuple[str, str]:
        """(the visible slide's heading, the URL's hash)."""
        visible = [
            h.text
            for h in browser.find_elements(By.CSS_SELECTOR, ".slide-title")
            if h.is_displayed()
        ]
        assert len(visible) == 1, visible  # exactly one slide on screen
        return visible[0], browser.execute_script("return location.hash")

    def press(key: str) -> tuple[str, str]:
        browser.find_element(By.TAG_NAME, "body").send_keys(key)
        return shown()

    browser.get(deck.as_uri())
    assert shown() == (titles[0], "#1")
    assert press(Keys.ARROW_RIGHT) == (titles[1], "#2")
    assert press(Keys.SPACE) == (titles[2], "#3")
    # The figure is drawn: a loaded image with a 16:9 box on screen.
    image = next(
        i for i in browser.find_elements(By.CSS_SELECTOR, ".figure img") if i.is_displayed()
    )
    assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
    assert image.size["width"] / image.size["height"] == pytest.approx(SIXTEEN_NINTHS, rel=0.02)
    heading = next(
        h for h in browser.find_elements(By.CSS_SELECTOR, ".slide-title") if h.is_displayed()
    )
    assert float(heading.value_of_css_property("font-size").removesuffix("px")) >= 24
    path = screenshot(browser, tmp_path / "deck.png")
    assert path.stat().st_size > 10_000
    assert press(Keys.ARROW_LEFT) == (titles[1], "#2")
    assert press(Keys.PAGE_DOWN) == (titles[2], "#3")
    assert press(Keys.PAGE_UP) == (titles[1], "#2")
    assert press(Keys.END) == (titles[-1], f"#{len(titles)}")
    assert press(Keys.ARROW_RIGHT) == (titles[-1], f"#{len(titles)}")  # stays on the last
    assert press(Keys.HOME) == (titles[0], "#1")
    # A link to a slide opens on it.
    browser.get(f"{deck.as_uri()}#4")
    browser.refresh()
    assert shown() == (titles[3], "#4")
    assert time.monotonic() - started < BROWSER_BUDGET_S


def test_a_run_without_trials_still_makes_a_deck(
    tmp_path: Path, synth: Any, demo_run: dict
) -> None:
    """An interrupted run before its first trial: the deck says so instead of failing."""
    run = {
        **demo_run,
        "status": "interrupted",
        "pairs": {name: {**pair, "trials": []} for name, pair in demo_run["pairs"].items()},
    }
    folder = tmp_path / run["run_id"]
    synth.write(folder, run)
    slides = _parse(write_slides(folder)).slides
    findings = [s for s in slides if "finding" in s["class"]]
    assert findings[0]["title"] == "pairbench: no pair has comparable rounds"
    assert any(s["title"].endswith("no valid measurements") for s in findings[1:])
    assert not any("95% CI" in s["text"] for s in findings)  # no ratio to claim
    assert "0 trials, 0 invalid" in slides[-1]["text"]
