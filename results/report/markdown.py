"""Markdown building blocks for reports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .document import Block, Bullets, Heading, Table, Text

RIGHT_ALIGNED = "---:"
LEFT_ALIGNED = "---"


def cell(text: object) -> str:
    """A table cell: pipes escaped, newlines flattened, so one record stays one row."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], numeric_from: int | None = None
) -> str:
    """A pipe table; columns from index `numeric_from` on are right-aligned (numbers)."""
    align = [
        RIGHT_ALIGNED if numeric_from is not None and i >= numeric_from else LEFT_ALIGNED
        for i in range(len(headers))
    ]
    lines = [
        "| " + " | ".join(cell(h) for h in headers) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def image(alt: str, target: str) -> str:
    """An inline image."""
    return f"![{cell(alt)}]({target})"


def link(text: str, target: str) -> str:
    """A link."""
    return f"[{cell(text)}]({target})"


def figures(paths: Sequence[Path]) -> str:
    """SVGs inline, PNGs linked (for viewers that do not show SVG)."""
    svgs = [image(p.stem, p.name) for p in paths if p.suffix == ".svg"]
    pngs = [link(p.stem, p.name) for p in paths if p.suffix == ".png"]
    return "\n\n".join([*svgs, "PNG: " + " · ".join(pngs)] if pngs else svgs)


def render(blocks: Sequence[Block]) -> str:
    """The blocks as one Markdown document; images are linked by file name (same folder)."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Text):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            rows = block.rows
            parts.append(table(block.headers, rows, block.numeric_from) if rows else block.empty)
        else:
            parts.append(figures(block.paths))
    return "\n\n".join(part for part in parts if part) + "\n"
