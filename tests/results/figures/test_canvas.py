"""Figure scaffolding: the caption line and saving in every format."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from pairbench.results.figures.canvas import caption, finish, knob_x_axis, new_figure, save


def test_caption_names_run_machine_and_profile(demo_run: dict) -> None:
    assert caption(demo_run) == (
        "run 20250101-120000-demo · Test CPU 9000, 2 cores · profile quick"
    )


def test_caption_without_machine_details() -> None:
    run = {"run_id": "r", "profile": "talk", "metadata": {}}
    assert caption(run) == "run r · unknown CPU · profile talk"


def test_save_writes_each_format_reproducibly(tmp_path: Path) -> None:
    def draw(folder: Path) -> list[Path]:
        figure = new_figure((4.0, 3.0))
        figure.subplots().plot([1, 2], [3, 4])
        return save(finish(figure, "a title", "a caption"), folder / "figure")

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = draw(tmp_path / "a"), draw(tmp_path / "b")
    assert [p.name for p in first] == ["figure.png", "figure.svg"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


@pytest.mark.parametrize(
    ("keys", "scale"), [(["0", "1000", "190000"], "symlog"), (["1", "10", "200"], "log")]
)
def test_a_log_knob_that_starts_at_zero_keeps_its_sweep_readable(
    keys: list[str], scale: str
) -> None:
    """Plain log would clip 0 to a tiny number and squeeze every other value into a corner."""
    figure = Figure()
    axes = figure.add_subplot()
    pair = {"knob": {"name": "depth", "label": "page depth", "unit": "rows", "log_scale": True}}
    axes.plot([float(k) for k in keys], [1.0, 2.0, 3.0])
    knob_x_axis(axes, pair, keys)
    assert axes.get_xscale() == scale
    positions = axes.transData.transform([(float(k), 1.0) for k in keys])[:, 0]
    gaps = positions[1:] - positions[:-1]
    assert gaps.min() > 0.2 * gaps.max()  # no value crushed against another


def test_caption_names_the_link_a_pair_crossed() -> None:
    linked = {"link": {"description": "db link unlimited, RTT = the knob"}}
    run = {
        "run_id": "r",
        "profile": "quick",
        "metadata": {},
        "pairs": {"plain": {}, "across": linked},
    }
    assert caption(run, linked) == (
        "run r · unknown CPU · profile quick · db link unlimited, RTT = the knob"
    )
    assert caption(run, {}) == "run r · unknown CPU · profile quick"  # loopback: nothing added
    # A figure of the whole run names each pair that crossed a link.
    assert caption(run).endswith(" · across: db link unlimited, RTT = the knob")
