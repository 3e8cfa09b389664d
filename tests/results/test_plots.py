"""Figures are written as PNG and SVG, with computed titles and the run caption."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from pairbench.results.figures import caption
from pairbench.results.findings import scaling_finding
from pairbench.results.plots import plot_pair, scaling_figure
from pairbench.results.stats import analyse_pair

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


def test_scaling_figure_title_and_axes(n_plus_one_run: dict, pair: dict) -> None:
    analysis = analyse_pair(pair)
    figure = scaling_figure(pair, analysis, caption(n_plus_one_run))
    assert figure.get_suptitle() == f"N+1 queries: {scaling_finding(pair, analysis)}"
    latency, throughput = figure.axes
    assert latency.get_yscale() == "log" and latency.get_xscale() == "log"
    assert latency.get_xlabel() == "rows per page (rows)"
    assert latency.get_ylabel() == "latency (ms)"
    assert throughput.get_ylabel() == "throughput (req/s)"


def test_figures_render_without_valid_data(
    tmp_path: Path, n_plus_one_run: dict, pair: dict
) -> None:
    empty = copy.deepcopy(pair)
    for trial in empty["trials"]:
        trial["valid"] = False
    paths = plot_pair("n_plus_one", empty, analyse_pair(empty), n_plus_one_run, tmp_path)
    # No valid cell has counters: the mechanism figure is left out, the others say "no data".
    assert {p.name for p in paths} == _names("n_plus_one", ("scaling", "spectrum", "timeline"))
