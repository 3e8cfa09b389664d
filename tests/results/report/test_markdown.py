"""Markdown tables stay one row per record."""

from __future__ import annotations

from pairbench.results.report.markdown import cell, image, table


def test_table_aligns_numbers_right_and_escapes_pipes() -> None:
    text = table(["name", "value"], [("a|b", 1.5), ("two\nlines", 2)], numeric_from=1)
    assert text.splitlines() == [
        "| name | value |",
        "| --- | ---: |",
        "| a\\|b | 1.5 |",
        "| two lines | 2 |",
    ]


def test_cell_and_image() -> None:
    assert cell("  spaced   out ") == "spaced out"
    assert image("scaling", "x-scaling.svg") == "![scaling](x-scaling.svg)"
