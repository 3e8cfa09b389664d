"""A workshop check's target: the participant's function served as an extra variant of a pair.

`pairbench workshop check PAIR` starts the targets with PAIRBENCH_EXERCISE=PAIR=FILE
(docs/architecture.md, "Exercises"). The pair is then served with two variants only, its bad one
and `yours` (role good, FILE's function `yours`), so the harness verifies and measures the
participant's fix exactly as it does any variant. The pair's other good variants are not
served: the check compares yours with the bad one, and the pair's micro cores (which name them)
are not part of a check.

A check whose request does not answer in time reads from the server's log (its stderr) the line
of the participant's file where it is stuck: SIGUSR1 makes faulthandler dump every thread's
stack, which shows a loop that blocks the event loop; SIGUSR2 prints every asyncio task's
stack, which shows an await that never returns (the event loop is free then, so it can).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import importlib.util
import inspect
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from .registry import Pair, PairError, Variant

TASK_STACKS_END = "End of task stacks."  # the check reads the stacks once this follows them
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
    bad = pair.exercise_start
    pair.variants = {
        bad.name: bad,
        EXERCISE_VARIANT: Variant(
            EXERCISE_VARIANT, "good", handler, reference.method, dict(reference.responses)
        ),
    }
    pair.micros, pair.micro_setup_factory = {}, None
    pair.lifespans.append(_task_stacks)
    faulthandler.register(signal.SIGUSR1, all_threads=True)


@contextlib.asynccontextmanager
async def _task_stacks(app: Any) -> AsyncIterator[None]:
    """While the app runs, SIGUSR2 prints every asyncio task's stack to stderr."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR2, _print_task_stacks)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGUSR2)


def _print_task_stacks() -> None:
    """Each task's chain of awaits, outermost first, as a traceback writes frames.

    `Task.print_stack` shows one frame of a suspended coroutine; the participant's function is
    further in, so the chain is followed through `cr_await` (and generators' `gi_yieldfrom`).
    """
    for task in asyncio.all_tasks():
        print(f"Stack for {task!r} (most recent call last):", file=sys.stderr)
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                code = frame.f_code
                print(
                    f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}',
                    file=sys.stderr,
                )
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    print(TASK_STACKS_END, file=sys.stderr)
    sys.stderr.flush()
