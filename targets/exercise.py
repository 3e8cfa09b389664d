"""A workshop check's target: the participant's function served as an extra variant of a pair.

`pairbench workshop check PAIR` starts the targets with PAIRBENCH_EXERCISE=PAIR=FILE
(docs/architecture.md, "Exercises"). The pair is then served with two variants only, its bad one
and `yours` (role good, FILE's function `yours`), so the harness verifies and measures the
participant's fix exactly as it does any variant. The pair's other good variants are not
served: the check compares yours with the bad one, and the pair's micro cores (which name them)
are not part of a check.

SIGUSR1 dumps every thread's stack to stderr (the server's log): a check whose request does not
answer in time reads from it the line of the participant's file that the loop is stuck on.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import inspect
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

from .registry import Pair, PairError, Variant

EXERCISE_VARIANT = "yours"  # the participant's function's name, and its variant's
USER_PAIRS_PACKAGE = "pairbench_user_pairs"  # registry._load_folder's module prefix


def load_solution(pair_name: str, file: Path) -> ModuleType:
    """Import the participant's file as a module of its own (its errors propagate as raised).

    Pairs loaded from PAIRBENCH_PAIRS live under a prefix that is no package; the exercise file
    imports from them by module name, so the prefix is made an (empty) package first.
    """
    if USER_PAIRS_PACKAGE not in sys.modules:
        package = ModuleType(USER_PAIRS_PACKAGE)
        package.__path__ = []
        sys.modules[USER_PAIRS_PACKAGE] = package
    name = f"pairbench_exercise_{pair_name}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise PairError(f"{file}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def serve_solution(pairs: Mapping[str, Pair], spec: str) -> None:
    """Make `PAIR=FILE`'s pair serve its bad variant and FILE's `yours`; idempotent."""
    pair_name, _, file = spec.partition("=")
    pair = pairs.get(pair_name)
    if pair is None or not file:
        raise PairError(f"PAIRBENCH_EXERCISE={spec!r}: expected PAIR=FILE with a known PAIR")
    if EXERCISE_VARIANT in pair.variants:
        return  # load_pairs runs more than once in a process
    exercise = pair.workshop
    if exercise is None:
        raise PairError(f"pair {pair_name!r} declares no exercise")
    module = load_solution(pair_name, Path(file))
    handler = getattr(module, EXERCISE_VARIANT, None)
    if not inspect.iscoroutinefunction(handler):
        raise PairError(f"{file}: defines no `async def {EXERCISE_VARIANT}(...)`")
    reference = pair.variants[exercise.reference]
    bad = pair.bad
    pair.variants = {
        bad.name: bad,
        EXERCISE_VARIANT: Variant(
            EXERCISE_VARIANT, "good", handler, reference.method, dict(reference.responses)
        ),
    }
    pair.micros, pair.micro_setup_factory = {}, None
    faulthandler.register(signal.SIGUSR1, all_threads=True)
