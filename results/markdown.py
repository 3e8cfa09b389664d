"""Markdown building blocks for reports."""

from __future__ import annotations

from collections.abc import Sequence

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
