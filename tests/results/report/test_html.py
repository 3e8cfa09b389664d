"""report.html's pieces: escaped text with code and bold, numeric cells, embedded PNGs."""

from __future__ import annotations

import base64
from pathlib import Path

from pairbench.results.report import html
from pairbench.results.report.document import Figures, Heading, Table, Text

PNG_BYTES = b"\x89PNG\r\n\x1a\n-not-really-an-image"


def test_inline_escapes_then_marks_code_and_bold() -> None:
    assert html.inline("**a < b** in `x & y`") == (
        "<strong>a &lt; b</strong> in <code>x &amp; y</code>"
    )


def test_numeric_columns_are_marked_and_empty_tables_say_so() -> None:
    table = html.table(Table(["pair", "ratio"], [("demo", "6.1x")], numeric_from=1))
    assert "<td>demo</td><td class=num>6.1x</td>" in table
    assert html.table(Table(["a"], [], empty="No valid data.")) == "<p>No valid data.</p>"


def test_a_page_embeds_pngs_and_skips_svgs(tmp_path: Path) -> None:
    png = tmp_path / "demo-scaling.png"
    png.write_bytes(PNG_BYTES)
    svg = tmp_path / "demo-scaling.svg"
    svg.write_text("<svg/>", encoding="utf-8")
    page = html.render("run <1>", [Heading("Summary", 2), Text(""), Figures([png, svg])])
    assert page.startswith("<!DOCTYPE html>") and "<title>run &lt;1&gt;</title>" in page
    assert f"data:image/png;base64,{base64.b64encode(PNG_BYTES).decode('ascii')}" in page
    assert "<p></p>" not in page and ".svg" not in page
