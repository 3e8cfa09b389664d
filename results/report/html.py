"""The blocks as one self-contained HTML page: CSS inline, figures embedded as base64 PNG.

No script, no external reference: the file opens offline, attached to an email or a CI run,
and looks the same everywhere.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from .document import Block, Bullets, Heading, Table, Text

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #212121;
       max-width: 1200px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #e0e0e0; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2.2em; border-bottom: 1px solid #e0e0e0; }
h3 { font-size: 1.05em; margin-top: 1.6em; color: #424242; }
code { font: .92em ui-monospace, "DejaVu Sans Mono", monospace; background: #f5f5f5;
       padding: 0 .25em; border-radius: 3px; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #e0e0e0; padding: .25em .7em; }
th { background: #fafafa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fcfcfc; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eeeeee; }
figcaption { font-size: .85em; color: #616161; }
ul { padding-left: 1.3em; }
"""
BOLD = re.compile(r"\*\*(.+?)\*\*")
CODE = re.compile(r"`([^`]+)`")


def inline(text: str) -> str:
    """Escape text and turn its `code` and **bold** marks into elements."""
    escaped = html.escape(text, quote=False)
    return BOLD.sub(r"<strong>\1</strong>", CODE.sub(r"<code>\1</code>", escaped))


def table(block: Table) -> str:
    """A table; numeric columns right-aligned."""
    if not block.rows:
        return f"<p>{inline(block.empty)}</p>"
    start = block.numeric_from if block.numeric_from is not None else len(block.headers)
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in block.headers)
    body = "\n".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if i >= start else ''}>{html.escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in block.rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def figure(path: Path) -> str:
    """A PNG embedded as a data URI, with its file name as caption."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.stem)
    return (
        f'<figure><img alt="{name}" src="data:image/png;base64,{data}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def render(title: str, blocks: Sequence[Block]) -> str:
    """A complete HTML document."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{inline(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            if block.text:
                parts.append(f"<p>{inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{inline(item)}</li>" for item in block.items)
            parts.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            parts.append(table(block))
        else:
            parts.extend(figure(p) for p in block.paths if p.suffix == ".png")
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
