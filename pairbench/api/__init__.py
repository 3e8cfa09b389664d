"""The Python API: run pairs, load stored runs, read their ratios and verdicts, draw their figures.

A layer beside the command line, above the engine (harness) and the reader (results), which it
composes as the command line does; the command line's `run` and `report` call it, and nothing
below imports it (docs/architecture.md, Layers). Its errors are pairbench's own
(pairbench/errors.py); it never exits the process. `import pairbench` re-exports these names
lazily (pairbench/__init__.py); docs/api.md documents each.

The names load on first use here too (PEP 562): the command line's input checks live in
`pairbench.api.checks`, and importing them must not import the engine and scipy with `run`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pairs import PairDescription, Variant, describe
    from .running import run
    from .stored import Ratio, Run, Verdict, load

# Each name's module in this package.
_MODULES = {
    "PairDescription": "pairs",
    "Variant": "pairs",
    "describe": "pairs",
    "run": "running",
    "Ratio": "stored",
    "Run": "stored",
    "Verdict": "stored",
    "load": "stored",
}

__all__ = ["PairDescription", "Ratio", "Run", "Variant", "Verdict", "describe", "load", "run"]


def __getattr__(name: str) -> Any:
    """`pairbench.api.run` and the others, imported from their module on first use."""
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
