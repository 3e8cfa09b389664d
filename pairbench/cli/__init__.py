"""The `pairbench` command: composes the engine (harness) and the reader (results) from above.

Nothing imports this package (docs/architecture.md, Layers).
"""

from . import calibrate, commands, compare, doctor, history, new, pages, workshop
from .main import main

__all__ = [
    "calibrate",
    "commands",
    "compare",
    "doctor",
    "history",
    "main",
    "new",
    "pages",
    "workshop",
]
