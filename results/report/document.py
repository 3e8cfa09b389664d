"""A report as a list of blocks, written once and rendered twice: Markdown and HTML.

Text may carry two inline marks, `code` and **bold**, which both renderers understand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    """A section title; level 1 is the document's."""

    text: str
    level: int


@dataclass(frozen=True)
class Text:
    """A paragraph."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bulleted list, one line per item."""

    items: Sequence[str]


@dataclass(frozen=True)
class Table:
    """Rows of cells; columns from `numeric_from` on hold numbers (right-aligned)."""

    headers: Sequence[str]
    rows: Sequence[Sequence[object]]
    numeric_from: int | None = None
    empty: str = "No data."  # said instead of a table without rows


@dataclass(frozen=True)
class Figures:
    """Figures saved next to the report, each as `<stem>.png` and `<stem>.svg`."""

    paths: Sequence[Path]


Block = Heading | Text | Bullets | Table | Figures
