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
def pair(n_plus_one_run: dict) -> dict:
    return n_plus_one_run["pairs"]["n_plus_one"]


def test_plot_pair_writes_png_and_svg(tmp_path: Path, n_plus_one_run: dict, pair: dict) -> None:
    paths = plot_pair("n_plus_one", pair, analyse_pair(pair), n_plus_one_run, tmp_path)
    assert {p.name for p in paths} == _names("n_plus_one", KINDS)  # no bystander: no figure
    for path in paths:
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes().startswith(b"\x89PNG")
        else:
            assert b"<svg" in path.read_bytes()[:1000]


def test_a_pair_with_a_bystander_gets_its_figure(tmp_path: Path, two_pair_run: dict) -> None:
    pair = two_pair_run["pairs"]["cpu"]
    paths = plot_pair("cpu", pair, analyse_pair(pair), two_pair_run, tmp_path)
    assert {p.name for p in paths} == _names("cpu", (*KINDS, "bystander"))


def test_figures_render_without_valid_data(
    tmp_path: Path, n_plus_one_run: dict, pair: dict
) -> None:
    empty = copy.deepcopy(pair)
    for trial in empty["trials"]:
        trial["valid"] = False
    paths = plot_pair("n_plus_one", empty, analyse_pair(empty), n_plus_one_run, tmp_path)
    # No valid cell has counters: the mechanism figure is left out, the others say "no data".
    assert {p.name for p in paths} == _names("n_plus_one", ("scaling", "spectrum", "timeline"))
