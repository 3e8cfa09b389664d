"""A talk's deck from a stored run: one self-contained HTML file, one finding per slide.

The slides say what the figures say, for a room: each slide's heading is a figure's own title
(the finding, as results/figures/ words it), the figure is drawn again at 16:9 with larger type
and without its title and caption line (the slide carries both, in type read from the back of
the room), beside the pair's headline ratio with its interval; every slide's footer gives the
conditions (machine, profile, the link between load generator and server when recorded, run
id). A title slide opens the deck and a "how it was measured" slide closes it.

Self-contained like report.html (results/report/html.py): the figures are SVG inlined as data
URIs (one <img> each, so the SVGs' ids never meet), CSS and the few lines of navigation script
are in the page, nothing is fetched. Keyboard: arrows, space, PageUp/PageDown, Home/End; the
slide number is the URL's hash (`slides.html#3`), so a reload or a shared link keeps the place.
Like every renderer here it reads run.json only (docs/architecture.md, Layers).
"""

from __future__ import annotations

import base64
import html
import io
import ipaddress
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import matplotlib
from matplotlib.figure import Figure

from pairbench.atomicfile import write_text_atomic

from ..analysis.findings import headline_ratio
from ..analysis.knobs import knob_text
from ..analysis.rounds import BYSTANDER
from ..analysis.stats import valid_trials
from ..analysis.summary import Analyses, analyse_run
from ..figures import workers
from ..figures.canvas import SVG_HASH_SALT, caption, link_descriptions
from ..figures.forest import forest_figure
from ..figures.pair import FIGURES
from ..io.runfile import load_run, run_file_path
from .formatting import fmt_interval, fmt_ratio

SLIDES_FILE = "slides.html"
# A pair's figures that make a finding for a room, in the order they are shown. The timeline
# (every trial over time) is how the measurement is checked, not a finding: it stays in the report.
SLIDE_FIGURES = ("scaling", "mechanism", "bystander", "spectrum")
FOREST = "forest"
# 16:9, drawn smaller in inches than the report's figures with larger type, so that once
# scaled to two thirds of a projected slide the axis labels stay legible at the back.
SLIDE_FIGURE_IN = (10.24, 5.76)
SLIDE_FONT_PT = 16  # matplotlib's default is 10
# About the characters of SLIDE_FONT_PT type that fit the narrowest panel a slide figure has.
AXIS_LABEL_CHARS = 50
TITLE_PAIR_LIMIT = 4  # more pair titles than this on the title slide become a count


@dataclass(frozen=True)
class Headline:
    """A pair's headline ratio: bad / best good where its expectation is judged."""

    ratio: str  # e.g. "5.0x"
    claim: str  # e.g. "lower p50 with batched than with lazy at n=200"
    interval: str  # e.g. "95% CI 4.4x–5.6x · 5 rounds"
    reference: str | None = None  # the published figure, e.g. "published: about 4x (SQLAlchemy)"
    reference_url: str | None = None


@dataclass(frozen=True)
class Slide:
    """One slide: a finding with its figure and ratio, or a slide of lines (title, closing)."""

    kind: str  # "title", "finding" or "closing"
    title: str
    figure_svg: str | None = None
    headline: Headline | None = None
    lines: Sequence[str] = field(default_factory=tuple)


def write_slides(
    run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None
) -> Path:
    """Write the deck of a stored run to `out` (default: slides.html in the run folder)."""
    run = load_run(run_dir)
    path = Path(out) if out is not None else run_file_path(run_dir).parent / SLIDES_FILE
    return write_text_atomic(path, deck_html(run, build_slides(run, analyse_run(run))))


def build_slides(run: Mapping[str, Any], analyses: Analyses) -> list[Slide]:
    """Title slide, the run's forest plot, each pair's findings, how it was measured."""
    jobs: list[tuple[Any, ...]] = [(FOREST, run, analyses, "")]
    for name in run["pairs"]:
        jobs += [(kind, run, analyses, name) for kind in SLIDE_FIGURES]
    # Drawing is most of the time: the figures are independent, so they are drawn side by side
    # where that is safe (results/figures/workers.py).
    drawn = workers.map_in_order(_draw, jobs)
    slides = [title_slide(run)]
    for (kind, _, _, name), figure in zip(jobs, drawn, strict=True):
        if figure is None:
            continue
        title, svg = figure
        headline = None if kind == FOREST else headline_of(run["pairs"][name], analyses[name])
        slides.append(Slide("finding", title, svg, headline))
    slides.append(closing_slide(run, analyses))
    return slides


def _draw(
    kind: str, run: Mapping[str, Any], analyses: Analyses, name: str
) -> tuple[str, str] | None:
    """(the figure's title, its SVG) drawn for a slide; None when the run has nothing for it."""
    text = caption(run)
    figure: Figure | None
    # Sizes resolve when a text is made and when it is drawn: both happen inside.
    with matplotlib.rc_context({"font.size": SLIDE_FONT_PT, "svg.hashsalt": SVG_HASH_SALT}):
        if kind == FOREST:
            figure = forest_figure(run, analyses, text)
        else:
            pair, analysis = run["pairs"][name], analyses[name]
            keys = list(analysis["per_variant"])
            figure = FIGURES[kind](pair, analysis, keys[-1] if keys else None, text)
        if figure is None:
            return None
        # The title was wrapped to the figure's width; the slide's heading is one paragraph.
        title = " ".join(figure.get_suptitle().split())
        for label in figure.texts:  # the title and the caption line: the slide shows both
            label.set_visible(False)
            label.set_in_layout(False)
        figure.set_size_inches(*SLIDE_FIGURE_IN)
        for axes in figure.axes:  # in larger type a long axis label would run off the figure
            xlabel = axes.get_xlabel()
            if len(xlabel) > AXIS_LABEL_CHARS:
                axes.set_xlabel(textwrap.fill(xlabel, AXIS_LABEL_CHARS))
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    return title, buffer.getvalue()


def headline_of(pair: Mapping[str, Any], analysis: Mapping[str, Any]) -> Headline | None:
    """Bad / best good at the expectation's knob value (else the largest compared one)."""
    found = headline_ratio(pair, analysis)
    if found is None:
        return None
    key, best, ratio = found
    if ratio.get("subject") == BYSTANDER:
        claim = f"lower bystander {ratio['metric']} under {best} than under {pair['bad']}"
    else:
        claim = f"lower {ratio['metric']} with {best} than with {pair['bad']}"
    interval = (
        f"95% CI {fmt_interval(ratio['ci_low'], ratio['ci_high'])}"
        if ratio.get("ci_low") is not None and ratio.get("ci_high") is not None
        else "too few rounds for an interval"
    )
    reference = pair.get("reference") or {}
    published = None
    if reference.get("figure"):
        source = f" ({reference['source']})" if reference.get("source") else ""
        published = f"published: {reference['figure']}{source}"
    return Headline(
        ratio=fmt_ratio(ratio["bad_over_good"]),
        claim=f"{claim} at {knob_text(pair, key)}",
        interval=f"{interval} · {ratio['rounds']} rounds",
        reference=published,
        reference_url=reference.get("url") or None,
    )


def title_slide(run: Mapping[str, Any]) -> Slide:
    """What the talk measures, and where and when."""
    titles = [str(pair["title"]) for pair in run["pairs"].values()]
    if len(titles) > TITLE_PAIR_LIMIT:
        heading = f"{len(titles)} backend anti-patterns against their fixes"
    else:
        heading = " · ".join(titles) or "pairbench"
    return Slide(
        "title",
        heading,
        lines=(
            "Each bad variant against its fixes: same data, verified, "
            "measured in interleaved rounds, with 95% intervals",
            f"run {run['run_id']}, {str(run['started_at'])[:10]}",
        ),
    )


def closing_slide(run: Mapping[str, Any], analyses: Analyses) -> Slide:
    """How the numbers were made, and how to make them again."""
    pairs = run["pairs"]
    checks = sum(len((p.get("verification") or {}).get("checks", [])) for p in pairs.values())
    trials = sum(len(p.get("trials", [])) for p in pairs.values())
    invalid = trials - sum(len(valid_trials(p)) for p in pairs.values())
    rounds = sorted(
        {
            r["rounds"]
            for analysis in analyses.values()
            for at_knob in analysis["ratios"].values()
            for r in at_knob.values()
        }
    )
    counted = (
        f"{rounds[0]}-{rounds[-1]}" if len(rounds) > 1 else (str(rounds[0]) if rounds else "0")
    )
    git = (run.get("metadata") or {}).get("git") or {}
    commit = str(git.get("commit") or "")[:10]
    lines = [
        f"Verified first: every variant returned the same data and the server's counters showed "
        f"the mechanism ({checks} checks)",
        f"Randomized interleaved rounds: each round ran every variant once in a shuffled order; "
        f"{counted} rounds per knob value",
        "Every request's latency into an HdrHistogram (µs, 3 significant digits); "
        "rounds merged exactly",
        "Ratio: bad / good per round, their geometric mean with a Student-t 95% interval",
        f"{trials} trials, {invalid} invalid (saturated generator, errors) and left out",
        f"Again: pairbench report {run['run_id']} --slides · pairbench run --from {run['run_id']}",
    ]
    if commit:
        lines.append(
            f"pairbench at commit {commit}{' (uncommitted changes)' if git.get('dirty') else ''}"
        )
    return Slide("closing", "How this was measured", lines=lines)


def conditions(run: Mapping[str, Any]) -> str:
    """The footer: machine, profile, the link when recorded, run id."""
    metadata = run.get("metadata") or {}
    machine = metadata.get("machine") or {}
    where = str(machine.get("cpu_model") or "unknown CPU")
    if machine.get("cores"):
        where += f", {machine['cores']} cores"
    parts = [where, f"profile {run['profile']}"]
    link = link_text(metadata, run)
    if link:
        parts.append(link)
    parts.append(f"run {run['run_id']}")
    return " · ".join(parts)


def link_text(metadata: Mapping[str, Any], run: Mapping[str, Any] | None = None) -> str | None:
    """How requests reached the server, from the recorded server URL: loopback or a network,
    and the emulated links the run's pairs crossed (`pairs.*.link`)."""
    url = str((metadata.get("server") or {}).get("url") or "")
    host = urlsplit(url).hostname if url else None
    if not host:
        return None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    text = "loopback" if loopback else f"network to {host}"
    links = link_descriptions(run) if run is not None else []
    if links:  # what the emulated links did replaces the bare "loopback" (harness/link.py)
        text = f"{text} across " + "; ".join(links)
    remote = (metadata.get("load_generator") or {}).get("remote_workers") or 0
    if remote:
        text += f", {remote} remote load generator{'s' if remote != 1 else ''}"
    return text


def deck_html(run: Mapping[str, Any], slides: Sequence[Slide]) -> str:
    """The complete deck: every slide, its CSS and its navigation, in one file."""
    footer = html.escape(conditions(run))
    count = len(slides)
    sections = "\n".join(
        _section(slide, index + 1, count, footer) for index, slide in enumerate(slides)
    )
    title = html.escape(f"pairbench slides: {run['run_id']}")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n"
        f'<body>\n<main id="deck">\n{sections}\n</main>\n<script>{SCRIPT}</script>\n'
        "</body>\n</html>\n"
    )


def _section(slide: Slide, number: int, count: int, footer: str) -> str:
    parts = [f'<h1 class="slide-title">{html.escape(slide.title)}</h1>']
    if slide.figure_svg is not None:
        data = base64.b64encode(slide.figure_svg.encode("utf-8")).decode("ascii")
        body = [
            f'<figure class="figure"><img alt="{html.escape(slide.title)}" '
            f'src="data:image/svg+xml;base64,{data}"></figure>'
        ]
        if slide.headline is not None:
            body.append(_headline(slide.headline))
        parts.append(f'<div class="body">{"".join(body)}</div>')
    if slide.lines:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in slide.lines)
        parts.append(f'<ul class="lines">{items}</ul>')
    parts.append(
        f'<footer><span class="conditions">{footer}</span>'
        f'<span class="number">{number} / {count}</span></footer>'
    )
    return (
        f'<section class="slide {slide.kind}" id="slide-{number}" data-number="{number}">'
        + "".join(parts)
        + "</section>"
    )


def _headline(headline: Headline) -> str:
    reference = ""
    if headline.reference is not None:
        text = html.escape(headline.reference)
        if headline.reference_url:  # a link to follow, not a resource the page loads
            text = f'<a href="{html.escape(headline.reference_url)}">{text}</a>'
        reference = f'<p class="reference">{text}</p>'
    return (
        '<aside class="headline">'
        f'<p class="ratio">{html.escape(headline.ratio)}</p>'
        f'<p class="claim">{html.escape(headline.claim)}</p>'
        f'<p class="interval">{html.escape(headline.interval)}</p>'
        f"{reference}</aside>"
    )


# Sizes are in --u, one hundredth of the slide's width: the slide is the largest 16:9 box the
# window holds, so the deck looks the same on a laptop and a projector. At 1920 pixels wide
# the smallest text (the footer) is 27 px and a finding's heading 50 px.
STYLE = """
:root { --u: min(1vw, 1.7778vh); --bad: #d84315; --good: #1565c0; }
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; background: #111; }
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       color: #1a1a1a; }
main { display: flex; flex-direction: column; align-items: center; }
.slide { width: calc(100 * var(--u)); height: calc(56.25 * var(--u)); background: #fff;
         padding: calc(2.4 * var(--u)) calc(3 * var(--u)) calc(1.2 * var(--u));
         display: flex; flex-direction: column; overflow: hidden; margin: 0 auto 1em; }
.js .slide { display: none; margin: 0; }
.js .slide.current { display: flex; }
.js main { justify-content: center; height: 100%; }
.slide-title { font-size: calc(2.6 * var(--u)); line-height: 1.2; margin: 0 0 calc(1.2 * var(--u));
               font-weight: 650; }
.body { flex: 1; display: flex; gap: calc(2 * var(--u)); align-items: center; min-height: 0; }
.figure { margin: 0; flex: none; width: calc(66 * var(--u)); aspect-ratio: 16 / 9; }
.figure img { width: 100%; height: 100%; object-fit: contain; display: block; }
.headline { flex: 1; }
.headline p { margin: 0 0 calc(1 * var(--u)); }
.ratio { font-size: calc(7 * var(--u)); font-weight: 700; color: var(--good); line-height: 1; }
.claim { font-size: calc(1.9 * var(--u)); line-height: 1.3; }
.interval { font-size: calc(1.7 * var(--u)); color: #424242; }
.reference { font-size: calc(1.5 * var(--u)); color: #616161; }
.reference a { color: inherit; }
.title .slide-title { font-size: calc(4.4 * var(--u)); margin-top: calc(10 * var(--u)); }
.title .lines { list-style: none; padding: 0; font-size: calc(2.2 * var(--u)); color: #424242; }
.closing .lines { font-size: calc(1.9 * var(--u)); line-height: 1.35; padding-left: 1.2em; flex: 1; }
.lines li { margin-bottom: calc(0.7 * var(--u)); }
footer { display: flex; justify-content: space-between; gap: calc(2 * var(--u));
         font-size: calc(1.4 * var(--u)); color: #616161; border-top: 1px solid #e0e0e0;
         padding-top: calc(0.6 * var(--u)); margin-top: auto; }
.number { white-space: nowrap; }
@media print {
  html, body { background: #fff; }
  .js .slide, .slide { display: flex; break-after: page; margin: 0; }
}
"""

# Navigation. The hash is replaced, not pushed, so Back leaves the deck rather than walking
# back through every slide shown.
SCRIPT = """
(function () {
  document.documentElement.classList.add("js");
  var slides = Array.prototype.slice.call(document.querySelectorAll(".slide"));
  var current = -1;
  function show(index) {
    index = Math.max(0, Math.min(slides.length - 1, index));
    if (index === current) { return; }
    if (current >= 0) { slides[current].classList.remove("current"); }
    slides[index].classList.add("current");
    current = index;
    var hash = "#" + (index + 1);
    if (location.hash !== hash) { history.replaceState(null, "", hash); }
  }
  function fromHash() {
    var number = parseInt(location.hash.slice(1), 10);
    show(isNaN(number) ? 0 : number - 1);
  }
  var next = { "ArrowRight": 1, "ArrowDown": 1, "PageDown": 1, " ": 1, "Enter": 1,
               "ArrowLeft": -1, "ArrowUp": -1, "PageUp": -1, "Backspace": -1 };
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var step = next[event.key];
    if (event.key === " " && event.shiftKey) { step = -1; }
    if (event.key === "Home") { show(0); }
    else if (event.key === "End") { show(slides.length - 1); }
    else if (step) { show(current + step); }
    else { return; }
    event.preventDefault();
  });
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
"""
