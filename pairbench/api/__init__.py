"""The Python API: run pairs, load stored runs, read their ratios and verdicts, draw their figures.

A layer beside the command line, above the engine (harness) and the reader (results), which it
composes as the command line does; the command line's `run` and `report` call it, and nothing
below imports it (docs/architecture.md, Layers). Its errors are pairbench's own
(pairbench/errors.py); it never exits the process. `import pairbench` re-exports these names
lazily (pairbench/__init__.py); docs/api.md documents each.
"""

from __future__ import annotations

from .pairs import PairDescription, Variant, describe
from .running import run
from .stored import Ratio, Run, Verdict, load

__all__ = ["PairDescription", "Ratio", "Run", "Variant", "Verdict", "describe", "load", "run"]
