"""Every figure of a pair is written as PNG and SVG; absent figures are left out."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from pairbench.results.analysis.stats import analyse_pair
from pairbench.results.figures.pair import plot_pair

KINDS = ("scaling", "spectrum", "mechanism", "timeline")


def _names(pair: str, kinds: tuple[str, ...]) -> set[str]:
    return {f"{pair}-{kind}.{extension}" for kind in kinds for extension in ("png", "svg")}


@pytest.fixture(scope="module")
def pair(demo_run: dict) -> dict:
    return demo_run["pairs"]["demo"]


def test_plot_pair_writes_png_and_svg(tmp_path: Path, demo_run: dict, pair: dict) -> None:
    paths = plot_pair("demo", pair, analyse_pair(pair), demo_run, tmp_path)
    assert {p.name for p in paths} == _names("demo", KINDS)  # no bystander: no figure
    for path in paths:
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes().startswith(b"\x89PNG")
        else:
            assert b"<svg" in path.read_bytes()[:1000]


def test_a_pair_with_a_bystander_gets_its_figure(tmp_path: Path, two_pair_run: dict) -> None:
    pair = two_pair_run["pairs"]["busy"]
    paths = plot_pair("busy", pair, analyse_pair(pair), two_pair_run, tmp_path)
    assert {p.name for p in paths} == _names("busy", (*KINDS, "bystander"))


def test_figures_render_without_valid_data(tmp_path: Path, demo_run: dict, pair: dict) -> None:
    empty = copy.deepcopy(pair)
    for trial in empty["trials"]:
        trial["valid"] = False
    paths = plot_pair("demo", empty, analyse_pair(empty), demo_run, tmp_path)
    # No valid cell has counters: the mechanism figure is left out, the others say "no data".
    assert {p.name for p in paths} == _names("demo", ("scaling", "spectrum", "timeline"))
