"""pairbench: what a backend anti-pattern costs, and what its fix buys (docs/architecture.md).

This package holds what sits below the engine (harness) and the reader (results), the errors
and exit codes, the run.json model and atomic files, and, above both, the command line
(`pairbench.cli`) and the Python API (`pairbench.api`, docs/api.md), whose names it re-exports:

    import pairbench
    result = pairbench.run(rounds=2)  # every pair, two rounds per knob value
    for name in result.pairs:
        print(result.verdict(name))

The re-export is lazy (PEP 562): the command line and the target server import this package,
and must not pay for the API's imports (the engine, the reader, scipy) to start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pairbench.api import (
        PairDescription,
        Ratio,
        Run,
        Variant,
        Verdict,
        describe,
        load,
        run,
    )

__all__ = ["PairDescription", "Ratio", "Run", "Variant", "Verdict", "describe", "load", "run"]


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use (`pairbench.run`, `from pairbench import load`)."""
    if name in __all__:
        from pairbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'pairbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
