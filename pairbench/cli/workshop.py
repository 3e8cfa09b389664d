"""`pairbench workshop`: exercises with a check, in the shape of perf-ninja's labs.

`init DIR` writes one exercise per pair that declares one (`pair.exercise`, docs/architecture.md,
"Exercises"): the bad variant's source, read from the pair's module, and a stub `yours` with the
reference variant's signature and the task as its docstring. `check PAIR` grades the
participant's `yours`: validated before anything is timed, then measured.

1. Static: the file exists (else exit 2), compiles (a syntax error is a FAIL naming file:line),
   and is not the untouched stub (`not attempted`, exit 4: an unchanged solution is not graded).
2. Probe: the targets are started with PAIRBENCH_EXERCISE (targets/exercise.py), which serves
   `yours` beside the bad variant, and `yours` is requested once with a 10 s limit. An import
   error, an exception or a request that does not answer is a FAIL naming the participant's
   file and line, read from the server's log (a Python traceback, or the stack faulthandler
   dumps on SIGUSR1 while the loop is stuck); the server is stopped by its PID either way.
3. Verification: the harness's own (harness/verify.py), at the exercise's knob value: the same
   result as the bad variant by the pair's rule, and each per-request counter of `shows` at
   most the reference variant's scenario rule (a JOIN's one statement passes where the
   reference sends two).
4. Measurement (skipped with `--verify-only`, a participant's quick loop: VERIFIED, exit 0):
   a short fixed-round run (harness/runner.py) of the bad variant against yours,
   real locust; bad / yours of the pair's expectation metric must reach the exercise's
   `min_ratio`, and the under-load counters of `shows` their bounds.

Exit codes: 0 PASS, 1 FAIL, 2 usage (unknown pair, missing file), 3 infrastructure, 4 not
attempted (EXIT_NOT_ATTEMPTED, pairbench/errors.py).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import re
import signal
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import httpx

from pairbench import errors
from pairbench.errors import InfrastructureError, PairbenchError, UsageError
from pairbench.harness import (
    catalogue,
    downstream,
    procs,
    request,
    runner,
    scenario,
    seeding,
    server,
    services,
    verify,
)
from pairbench.harness.postgres import needed_connections
from pairbench.runmodel import ERROR_RATIO_METRIC
from pairbench.targets.exercise import EXERCISE_VARIANT, TASK_STACKS_END
from pairbench.targets.registry import EXERCISE_ENV, Exercise, Pair, load_pairs

from .main import main, service_options

CALL_LIMIT_S = 10.0  # one call of the participant's function, before anything is measured
CALL_LIMIT_RANGE = (0.5, 600.0)  # --call-limit: a slow laptop may need more, a test less
STATE_FILE = ".workshop.json"  # init's hash of each exercise file: an unchanged one is not graded
CHECK_ROUNDS = 3  # rounds per variant of the check's measurement
MIN_ROUND_S = 1.0  # a check's round is the quick profile's, at least this long
STACK_WAIT_S = 1.0  # for faulthandler's dump to reach the server's log
TASKS_WAIT_S = 2.0  # for the tasks' stacks, which a blocked event loop never prints
STUB_MESSAGE = "write your fix here, then: pairbench workshop check {pair}"
FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+),? in (?P<function>\S+)')


class NotAttempted(PairbenchError):
    """The participant's function is still the stub: nothing to grade, not a failure."""

    exit_code = errors.EXIT_NOT_ATTEMPTED


class Failed(PairbenchError):
    """The participant's solution fails the check; the message is the reason, then the hint."""

    exit_code = errors.EXIT_FAILED


# -- writing the exercises -----------------------------------------------------------------


def exercises(pairs: Mapping[str, Pair] | None = None) -> dict[str, Pair]:
    """The pairs that declare an exercise, in the workshop's order: by their `order`, then those
    checked on one request alone first (a wrong attempt fails on a counter in seconds, before
    any timing), then those judged under load or on time alone; the registry's order within each."""
    pairs = load_pairs() if pairs is None else pairs
    found = [p for p in pairs.values() if p.workshop is not None]
    found.sort(
        key=lambda p: (_exercise(p).order, not any(s.per_request for s in _exercise(p).shows))
    )
    return {pair.name: pair for pair in found}


def variant_source(pair: Pair, variant: str, rename: str | None = None) -> str:
    """A variant's handler as written in its module, without its decorators (optionally renamed)."""
    lines = textwrap.dedent(inspect.getsource(pair.variants[variant].handler)).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("def ", "async def ")))
    text = "\n".join(lines[start:]) + "\n"
    if rename is not None:
        text = re.sub(rf"\bdef {re.escape(variant)}\(", f"def {rename}(", text, count=1)
    return text


def _signature(source: str) -> str:
    """The `def ...:` header of a function's source (several lines when it wraps)."""
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    return "\n".join(source.splitlines()[: node.body[0].lineno - 1])


def stub_source(pair: Pair) -> str:
    """The participant's function: the reference's signature, the task, NotImplementedError."""
    exercise = _exercise(pair)
    header = _signature(variant_source(pair, exercise.reference, rename=EXERCISE_VARIANT))
    task = textwrap.fill(exercise.task, width=92, initial_indent="    ", subsequent_indent="    ")
    message = STUB_MESSAGE.format(pair=pair.name)
    return f'{header}\n    """\n{task}\n    """\n    raise NotImplementedError("{message}")\n'


def _names(source: str) -> set[str]:
    """Every name the code reads (f-strings and annotations included)."""
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}


def exercise_source(pair: Pair, solution: str | None = None) -> str:
    """The exercise file: the bad variant to read and `solution` (the stub by default).

    Everything the two functions name from the pair's module is imported from it, so the file
    runs as the targets' own code does, and FastAPI resolves its annotations.
    """
    exercise = _exercise(pair)
    module = sys.modules[pair.exercise_start.handler.__module__]
    bad = variant_source(pair, pair.exercise_start.name)
    body = solution if solution is not None else stub_source(pair)
    own = {pair.exercise_start.name, EXERCISE_VARIANT, "pair", "annotations"}
    # The task names what the fix may use (`spin`, `HITS`): those come along too.
    used = _names(bad + body) | set(re.findall(r"[A-Za-z_]\w*", exercise.task))
    names = sorted(n for n in used - own if n in vars(module) and not n.startswith("__"))
    imports = "".join(f"    {n},\n" for n in names)
    summary = textwrap.fill(pair.summary, width=96)
    start = pair.exercise_start.name
    return (
        f'"""Exercise: {pair.title}.\n\n{summary}\n\n'
        f"Below: `{start}`, the bad variant as the targets serve it at {pair.path(start)},"
        f"\nthen `{EXERCISE_VARIANT}`, your fix: same signature and same result, measured against"
        f" `{start}`\nat {pair.knob.name}={exercise.knob:g}. Check it with:\n\n"
        f"    pairbench workshop check {pair.name}\n"
        '"""\n\n'
        "from __future__ import annotations\n\n"
        f"from {module.__name__} import (\n{imports})\n\n\n"
        f"# The bad variant (read it; it is not what the check grades).\n{bad}\n\n"
        f"# Your fix: the check serves it at {pair.path(EXERCISE_VARIANT)}.\n{body}"
    )


def _exercise(pair: Pair) -> Exercise:
    if pair.workshop is None:
        raise UsageError(f"pair {pair.name!r} declares no exercise")
    return pair.workshop


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_exercises(folder: Path, force: bool) -> list[Path]:
    """Write every exercise and the README into `folder`; refuse a non-empty one unless forced."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise UsageError(f"{folder} is not empty; choose an empty folder or pass --force")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{folder}: cannot create it ({e.strerror})") from e
    pairs = load_pairs()
    found = exercises(pairs)
    written, hashes = [], {}
    for name, pair in found.items():
        text = exercise_source(pair)
        path = folder / f"{name}.py"
        path.write_text(text, encoding="utf-8")
        hashes[name] = _digest(text)
        written.append(path)
    readme = folder / "README.md"
    readme.write_text(_readme(found, pairs), encoding="utf-8")
    (folder / STATE_FILE).write_text(json.dumps(hashes, indent=2) + "\n", encoding="utf-8")
    return [*written, readme]


def _readme(found: Mapping[str, Pair], pairs: Mapping[str, Pair]) -> str:
    order = "\n".join(
        f"{i}. `{name}.py`: {pair.title}. Fix `{pair.exercise_start.name}`: bad / yours of the"
        f" {_metric(name)} at least {_exercise(pair).min_ratio:g}x at"
        f" {pair.knob.name}={_exercise(pair).knob:g}."
        for i, (name, pair) in enumerate(found.items(), start=1)
    )
    return (
        "# pairbench workshop exercises\n\n"
        "Each file holds a bad variant, as the targets serve it, and `yours`: a stub with the"
        " same signature\nwhose docstring says what to achieve. Replace its body with your"
        " fix, then check it from this folder:\n\n"
        "```sh\npairbench workshop check PAIR          # e.g. the first one below\n```\n\n"
        "The check validates before it times: your function is called once (10 s limit), its"
        " result must equal\nthe bad variant's and it must show the mechanism of the fix"
        " (statements, connections, hits); only then\nis it measured against the bad variant"
        " for a few seconds. It prints PASS or FAIL with the reason and a\nhint. Exit codes:"
        " 0 PASS, 1 FAIL, 2 usage (unknown pair, missing file), 3 infrastructure, 4 not\n"
        "attempted (the stub is untouched).\n\n"
        f"## Order\n\n{order}\n{_without(found, pairs)}"
    )


def _without(found: Mapping[str, Pair], pairs: Mapping[str, Pair]) -> str:
    """The pairs that have no exercise, each with why (a lesson no handler can fix)."""
    absent = [p for p in pairs.values() if p.name not in found and p.no_workshop]
    if not absent:
        return ""
    lines = "\n".join(f"- `{p.name}`: {p.no_workshop.rstrip('.')}." for p in absent)
    return f"\n## Pairs without an exercise\n\n{lines}\n"


def _metric(name: str) -> str:
    files = scenario.available()
    if name not in files:
        return "p50 latency"
    expectation = scenario.load_scenario(files[name]).expectation
    if expectation is None:
        return "p50 latency"
    subject = " of the bystander request" if expectation.subject == "bystander" else ""
    if expectation.metric == ERROR_RATIO_METRIC:
        return f"error ratio{subject}"
    return f"{expectation.metric} latency{subject}"


# -- checking a solution -------------------------------------------------------------------


@dataclass
class Verdict:
    """A PASS: what was measured; a FAIL raises `Failed` instead."""

    pair: str
    detail: str
    run_dir: Path | None


def _static(pair: Pair, file: Path, folder: Path) -> str:
    """The file's text, once it compiles, defines `yours` and is not the untouched stub."""
    if not file.is_file():
        raise UsageError(
            f"{file}: no such exercise file (write them with `pairbench workshop init`)"
        )
    source = file.read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(source, str(file))
    except SyntaxError as e:
        raise Failed(f"{file}:{e.lineno}: syntax error: {e.msg}") from None
    function = next(
        (
            n
            for n in tree.body
            if isinstance(n, ast.AsyncFunctionDef) and n.name == EXERCISE_VARIANT
        ),
        None,
    )
    if function is None:
        raise Failed(f"{file}: defines no `async def {EXERCISE_VARIANT}(...)` at the top level")
    hashes = _read_hashes(folder)
    if hashes.get(pair.name) == _digest(source) or _is_stub(function):
        raise NotAttempted(
            f"{file}:{function.lineno}: not attempted: `{EXERCISE_VARIANT}` is still the stub"
            " (it raises NotImplementedError); write your fix, then check again"
        )
    return source


def _read_hashes(folder: Path) -> dict[str, str]:
    try:
        found = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _is_stub(function: ast.AsyncFunctionDef) -> bool:
    """Its body is (a docstring and) `raise NotImplementedError(...)` only."""
    body = list(function.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    raised = body[0].exc
    raised = raised.func if isinstance(raised, ast.Call) else raised
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


def check_scenario(pair: Pair, base: scenario.Scenario, profile: str) -> scenario.Scenario:
    """The pair's scenario for a check: the bad variant and yours, at the exercise's knob.

    Yours takes the reference's request overrides and per-request mechanism rules; the load is
    the profile's, at one knob value, with CHECK_ROUNDS fixed rounds of at least MIN_ROUND_S.
    """
    exercise = _exercise(pair)
    keep = {
        pair.exercise_start.name: pair.exercise_start.name,
        exercise.reference: EXERCISE_VARIANT,
    }
    mechanism = {
        counter: {keep[v]: rule for v, rule in rules.items() if v in keep}
        for counter, rules in base.mechanism.items()
    }
    plan = {keep[v]: path for v, path in base.plan.items() if v in keep}
    overrides = {keep[v]: o for v, o in base.request.variants.items() if v in keep}
    load = base.load(profile)
    load = load.model_copy(
        update={
            "knob_values": [float(exercise.knob)],
            "rounds": CHECK_ROUNDS,
            "max_rounds": None,
            "round_seconds": max(load.round_seconds, MIN_ROUND_S),
            "min_ratio": None,
        }
    )
    expectation = (
        base.expectation or scenario.Expectation(min_ratio=exercise.min_ratio)
    ).model_copy(update={"at": float(exercise.knob), "min_ratio": exercise.min_ratio})
    return base.model_copy(
        update={
            "mechanism": mechanism,
            "plan": plan,
            "request": base.request.model_copy(update={"variants": overrides}),
            "expectation": expectation,
            "profiles": {profile: load},
        }
    )


def _participant_frame(log: str, file: Path) -> tuple[int, str] | None:
    """The last line of `file` in the log's stacks, with its text; None when none is there."""
    wanted = str(file.resolve())
    found = [m for m in FRAME.finditer(log) if Path(m["file"]).resolve().as_posix() == wanted]
    if not found:
        return None
    line = int(found[-1]["line"])
    lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    return line, lines[line - 1].strip() if 0 < line <= len(lines) else ""


def _exception_line(log: str) -> str:
    """The last traceback's closing line (`ZeroDivisionError: division by zero`)."""
    start = log.rfind("Traceback (most recent call last):")
    if start < 0:
        return ""
    for line in log[start:].splitlines()[1:]:
        if line and not line.startswith((" ", "\t")):
            return line.strip()
    return ""


def _where(log: str, file: Path, fallback: int) -> str:
    frame = _participant_frame(log, file)
    if frame is None:
        return f"{file}:{fallback}"
    line, text = frame
    return f"{file}:{line} (`{text}`)" if text else f"{file}:{line}"


def _def_line(source: str) -> int:
    tree = ast.parse(source)
    return next(
        (
            n.lineno
            for n in tree.body
            if isinstance(n, ast.AsyncFunctionDef) and n.name == EXERCISE_VARIANT
        ),
        1,
    )


def _log_after(log: Path, start: int, awaited: str, wait: float = STACK_WAIT_S) -> str:
    """The server log's text since `start`, once `awaited` is in it (a traceback is written
    after the 500 has been sent) or `wait` seconds have passed."""
    deadline = time.monotonic() + wait
    while True:
        with log.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        if awaited in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


@contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _probe(
    pair: Pair,
    file: Path,
    source: str,
    checked: scenario.Scenario,
    endpoints: services.Endpoints,
    log: Path,
    counters: _Counters,
    service_env: Mapping[str, str] | None = None,
    call_limit_s: float = CALL_LIMIT_S,
) -> int:
    """Serve yours, call it once within `call_limit_s`, then verify it; a FAIL names file:line.

    Returns how many checks passed."""
    exercise = _exercise(pair)
    def_line = _def_line(source)
    try:
        target = server.start(
            endpoints.pg_dsn,
            endpoints.redis_url,
            log,
            extra_env={**(service_env or {}), EXERCISE_ENV: f"{pair.name}={file.resolve()}"},
            pairs=[pair.name],
        )
    except InfrastructureError as e:
        text = log.read_text(errors="replace") if log.exists() else ""
        frame = _participant_frame(text, file)
        if frame is None:
            raise
        raise Failed(
            f"{_where(text, file, def_line)}: importing the file failed:"
            f" {_exception_line(text) or e}"
        ) from None
    try:
        with httpx.Client(base_url=target.url, timeout=call_limit_s) as client:
            info = catalogue.resolve(checked, catalogue.fetch(target.url))
            steps = request.for_variants(info, client, exercise.knob)[EXERCISE_VARIANT]
            keys = checked.keys.verify if checked.keys else []
            steps = request.with_key(steps, keys[0] if keys else None)
            start = log.stat().st_size
            try:
                replies = request.send_all(client, steps)
            except InfrastructureError as e:
                if not isinstance(e.__cause__, httpx.TimeoutException):
                    raise
                # Every task's stack (an await that never returns: the loop is free), then
                # every thread's (a loop that blocks it): targets/exercise.py.
                # The tasks' dump is read whole (its end marker) before the threads' is asked
                # for: the two would interleave in the log, and a read at the end of the
                # second could miss the participant's frame in the first.
                os.kill(target.pid, signal.SIGUSR2)
                text = _log_after(log, start, TASK_STACKS_END, TASKS_WAIT_S)
                if TASK_STACKS_END not in text or _participant_frame(text, file) is None:
                    os.kill(target.pid, signal.SIGUSR1)
                    text = _log_after(log, start, "most recent call first")
                # Stuck: SIGTERM would wait for the request that never ends.
                procs.stop_pid(target.pid, signal.SIGKILL, popen=target.popen)
                raise Failed(
                    f"{_where(text, file, def_line)}: `{EXERCISE_VARIANT}` did not answer within"
                    f" {call_limit_s:g} s at {pair.knob.name}={exercise.knob:g}: an endless loop,"
                    " or an await that never returns"
                ) from None
            for step, reply in zip(steps, replies, strict=True):
                if reply.status == request.expected_status(step):
                    continue
                text = _log_after(log, start, "Traceback" if reply.status >= 500 else "")
                if reply.status >= httpx.codes.INTERNAL_SERVER_ERROR:
                    raised = (_exception_line(text) or f"status {reply.status}").rstrip(":")
                    frame = _participant_frame(text, file)
                    if frame is None or frame[0] == def_line:  # raised after it returned
                        raise Failed(
                            f"{file}:{def_line}: `{EXERCISE_VARIANT}` returned a value the"
                            f" response cannot carry ({raised}): return what"
                            f" `{pair.exercise_start.name}` returns"
                        )
                    raise Failed(
                        f"{_where(text, file, def_line)}: `{EXERCISE_VARIANT}` raised {raised}"
                    )
                raise Failed(
                    f"{file}:{def_line}: {request.describe(step)} answered {reply.status},"
                    f" expected {step['status']}: {reply.raw[:200].decode(errors='replace')}"
                )
            result = verify.verify_pair(client, info, [exercise.knob])
            _verified(pair, file, def_line, result, counters)
            return len(result.checks)
    finally:
        target.stop()


def _verified(
    pair: Pair, file: Path, def_line: int, result: verify.Verification, counters: _Counters
) -> None:
    """A failed check of yours is a FAIL; a per-request counter below the rule passes (at most)."""
    exercise = _exercise(pair)
    hints = {f"{s.counter}_per_request": s for s in exercise.shows if s.per_request}
    # The counters of `shows` first, in its order: the figure the exercise is about is the one
    # the FAIL names when several are off (a COUNT(*) adds a statement and its rows counted).
    order = list(hints)
    checks = sorted(
        result.checks, key=lambda c: order.index(c.name) if c.name in order else len(order)
    )
    for check in checks:
        if check.passed:
            continue
        if check.variant != EXERCISE_VARIANT:
            raise InfrastructureError(
                f"the bad variant {check.variant!r} failed its own verification: {check.detail}"
            )
        if check.name.endswith("_per_request"):
            counter = check.name.removesuffix("_per_request")
            want = counters.rules.get(counter)
            if check.value is not None and want is not None and check.value <= want:
                continue  # fewer than the reference: a better fix, not a worse one
            shows = hints.get(check.name)
            got = "no" if check.value is None else _number(check.value)
            rule = "none" if want is None else _number(want)
            raise Failed(
                f"{file}:{def_line}: your variant shows {got} {counters.label(counter)} per"
                f" request at {pair.knob.name}={exercise.knob:g} (the reference"
                f" {exercise.reference}: {rule})" + (f": {shows.hint}" if shows else "")
            )
        if check.name.startswith("equal_"):
            raise Failed(
                f"{file}:{def_line}: your variant returns other data than {pair.exercise_start.name}"
                f" at {pair.knob.name}={exercise.knob:g}: {check.detail}"
            )
        raise Failed(f"{file}:{def_line}: {check.name} check failed: {check.detail}")


def _number(value: float) -> str:
    """A count as people read it: 2,000,000 rather than 2e+06; a fraction as it is."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class _Counters:
    """What messages say about counters: the reference's per-request rule at the exercise's
    knob, and each counter's label and unit from the describe document."""

    rules: Mapping[str, float]
    labels: Mapping[str, str]
    units: Mapping[str, str]
    # Counters read per request (`per` "request"): a figure of theirs is "N <label> per request".
    per_request: frozenset[str] = frozenset()

    def label(self, counter: str) -> str:
        return self.labels.get(counter, counter)

    def amount(self, counter: str, value: float) -> str:
        """A figure under load in words: `0.95 acquire timeouts per request`, `hit ratio 12%`."""
        if counter in self.per_request:
            return f"{value:.3g} {self.label(counter)} per request"
        return f"{self.label(counter)} {value:.3g}{self.unit(counter)}"

    def bound(self, counter: str, value: float) -> str:
        """A bound as it follows `at least`/`at most`: `0.01 per request`, `50%`."""
        return (
            f"{value:g} per request"
            if counter in self.per_request
            else f"{value:g}{self.unit(counter)}"
        )

    def unit(self, counter: str) -> str:
        """As it follows a number: `%` stuck to it, other units after a space."""
        unit = self.units.get(counter, "")
        return unit if unit in ("", "%") else f" {unit}"


def check_solution(
    pair_name: str,
    folder: Path,
    profile: str,
    options: services.ServiceOptions,
    out: Path,
    say: runner.Progress,
    measure: bool = True,
    call_limit_s: float = CALL_LIMIT_S,
) -> Verdict:
    """Grade FOLDER/PAIR.py: static checks, probe and verification, then (`measure`) the
    measurement; without it a solution that passes verification is VERIFIED, not graded."""
    found = exercises()
    pair = found.get(pair_name)
    if pair is None:
        raise UsageError(f"unknown exercise {pair_name!r} (known: {', '.join(found) or 'none'})")
    exercise = _exercise(pair)
    file = folder / f"{pair_name}.py"
    source = _static(pair, file, folder)
    files = scenario.available()
    if pair_name not in files:
        raise UsageError(f"pair {pair_name!r} has no scenario file")
    checked = check_scenario(pair, scenario.load_scenario(files[pair_name]), profile)
    suite = scenario.profile(profile)
    described = catalogue.describe()
    counters = _Counters(
        rules={
            counter: rules[EXERCISE_VARIANT].expected(exercise.knob)
            for counter, rules in checked.mechanism.items()
            if EXERCISE_VARIANT in rules
        },
        labels={n: str(c.get("label") or n) for n, c in described.counters.items()},
        units={n: str(c.get("unit") or "") for n, c in described.counters.items()},
        per_request=frozenset(
            n for n, c in described.counters.items() if c.get("per") == "request"
        ),
    )
    connections = needed_connections(described.max_connections([pair_name]))
    with (
        services.provide(options, connections) as endpoints,
        # The probe's target calls it too (the run below starts its own: runner.execute).
        downstream.provide(
            described.needs_downstream([pair_name]),
            services.state_dir(),
            out / f"probe-{pair_name}-downstream.log",
        ) as service,
    ):
        say.message(f"{pair_name}: seeding the {suite.data_profile(profile)} dataset")
        seeding.seed(
            endpoints.pg_dsn, suite.data_profile(profile), seeding.seedable(described, [pair_name])
        )
        say.message(f"{pair_name}: calling {EXERCISE_VARIANT} once, then verifying it")
        out.mkdir(parents=True, exist_ok=True)
        log = out / f"probe-{pair_name}.log"  # kept: the server's side of the last check
        log.unlink(missing_ok=True)
        passed = _probe(
            pair,
            file,
            source,
            checked,
            endpoints,
            log,
            counters,
            service.env() if service is not None else None,
            call_limit_s,
        )
        if not measure:
            return Verdict(
                pair_name,
                f"{passed} checks passed at {pair.knob.name}={exercise.knob:g}: the same result"
                f" as {pair.exercise_start.name}, the reference {exercise.reference}'s mechanism"
                " (not measured: drop --verify-only to be graded)",
                None,
            )
        measured = checked.model_copy(
            update={
                "mechanism": {
                    c: {v: r for v, r in rules.items() if v != EXERCISE_VARIANT}
                    for c, rules in checked.mechanism.items()
                },
                "plan": {},
            }
        )
        say.message(f"{pair_name}: measuring {pair.exercise_start.name} against {EXERCISE_VARIANT}")
        given = services.ServiceOptions(pg_dsn=endpoints.pg_dsn, redis_url=endpoints.redis_url)
        run_options = runner.RunOptions(
            pairs=[pair_name],
            profile=profile,
            out=out,
            seed=runner.now_seed(),
            services=given,
            scenarios=[measured],
            suite=suite,
        )
        with _environ(EXERCISE_ENV, f"{pair_name}={file.resolve()}"):
            outcome = runner.execute(run_options, say)
    return _judge(pair, file, _def_line(source), outcome, counters)


def _judge(
    pair: Pair, file: Path, def_line: int, outcome: runner.RunOutcome, counters: _Counters
) -> Verdict:
    from pairbench.results.analysis.knobs import expectation_knob_key
    from pairbench.results.analysis.stats import analyse_pair

    exercise = _exercise(pair)
    stored = outcome.run["pairs"][pair.name]
    if outcome.failed_verification:
        first = (stored.get("verification") or {}).get("checks") or []
        failed: dict[str, Any] = next((c for c in first if not c.get("passed")), {})
        raise Failed(f"{file}:{def_line}: verification failed: {failed.get('detail', '?')}")
    analysis = analyse_pair(stored)
    key = expectation_knob_key(stored)
    ratio = analysis["ratios"].get(key or "", {}).get(EXERCISE_VARIANT) or {}
    value = ratio.get("bad_over_good")
    where = f"{pair.knob.name}={exercise.knob:g}"
    if value is None:
        raise InfrastructureError(
            f"no valid measurement of {EXERCISE_VARIANT} at {where}; see {outcome.run_dir}"
        )
    interval = ""
    if ratio.get("ci_low") is not None:
        interval = f" [{ratio['ci_low']:.2f}, {ratio['ci_high']:.2f}]"
    cell = analysis["per_variant"].get(key or "", {}).get(EXERCISE_VARIANT) or {}
    figures = cell.get("mechanism") or {}
    for shows in exercise.shows:
        if shows.per_request:
            continue
        got = figures.get(shows.counter)
        counter, label = shows.counter, counters.label(shows.counter)
        if got is None and shows.at_least is not None:  # nothing counted: none shown
            raise Failed(
                f"{file}:{def_line}: no {label} counted under load at {where}, expected at"
                f" least {counters.bound(counter, shows.at_least)}: {shows.hint}"
            )
        if got is None:
            raise InfrastructureError(f"{label} was not measured; see {outcome.run_dir}")
        if shows.at_least is not None and got < shows.at_least:
            raise Failed(
                f"{file}:{def_line}: {counters.amount(counter, got)} under load at {where},"
                f" expected at least {counters.bound(counter, shows.at_least)}: {shows.hint}"
            )
        if shows.at_most is not None and got > shows.at_most:
            raise Failed(
                f"{file}:{def_line}: {counters.amount(counter, got)} under load at {where},"
                f" expected at most {counters.bound(counter, shows.at_most)}: {shows.hint}"
            )
    metric = (stored.get("expectation") or {}).get("metric", "p50")
    claim = (
        f"{metric} of {pair.exercise_start.name} / {EXERCISE_VARIANT} {value:.2f}x{interval} at {where}"
        f" (threshold {exercise.min_ratio:g}x)"
    )
    if value < exercise.min_ratio:
        raise Failed(
            f"{file}:{def_line}: correct, but not fast enough: {claim}; compare your variant"
            f" with the bad one: the work it saves must grow with {pair.knob.name}"
        )
    return Verdict(pair.name, claim, outcome.run_dir)


# -- the commands --------------------------------------------------------------------------


@main.group("workshop")
def workshop() -> None:
    """Exercises with a check: write the fix of each pair's bad variant, then grade it."""


@workshop.command("init")
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="write into a folder that is not empty")
def init(folder: Path, force: bool) -> None:
    """Write one exercise per pair into DIR, and a README saying how to check them."""
    for path in write_exercises(folder, force):
        click.echo(f"wrote {path}")
    click.echo(f"next: cd {folder} && pairbench workshop check PAIR")


@workshop.command("check")
@click.argument("pair")
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="the folder `workshop init` wrote",
)
@click.option("--profile", default="quick", show_default=True, help="whose data and load to use")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="where the check's run is stored [default: <state folder>/workshop]",
)
@click.option(
    "--verify-only",
    is_flag=True,
    help="stop after the verification, before anything is timed: VERIFIED (exit 0) or FAIL",
)
@click.option(
    "--call-limit",
    type=click.FloatRange(*CALL_LIMIT_RANGE),
    default=CALL_LIMIT_S,
    show_default=True,
    metavar="SECONDS",
    help="how long the first call of yours may take before it is a FAIL (an endless loop)",
)
@service_options
def check(
    pair: str,
    folder: Path,
    profile: str,
    out: Path | None,
    verify_only: bool,
    call_limit: float,
    **service_flags: str | None,
) -> None:
    """Grade DIR/PAIR.py's `yours`: PASS (exit 0), FAIL (1), not attempted (4)."""
    options = services.ServiceOptions.from_env(**service_flags)
    say = runner.Progress(message=lambda text: click.echo(text, err=True))
    try:
        verdict = check_solution(
            pair,
            folder,
            profile,
            options,
            out or services.state_dir() / "workshop",
            say,
            measure=not verify_only,
            call_limit_s=call_limit,
        )
    except Failed as e:
        click.echo(f"FAIL {pair}: {e}")
        sys.exit(e.exit_code)
    except NotAttempted as e:
        click.echo(f"NOT ATTEMPTED {pair}: {e}")
        sys.exit(e.exit_code)
    click.echo(f"{'VERIFIED' if verify_only else 'PASS'} {pair}: {verdict.detail}")
