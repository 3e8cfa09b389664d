"""The micro suite's servers and loop (docs/architecture.md, "The micro suite").

The embedded PostgreSQL and Valkey a run uses (`services.provide`: those of `pairbench services
up`, or PAIRBENCH_PG_DSN / PAIRBENCH_REDIS_URL, else started here and stopped at the end), the
micro pairs seeded with `--micro-profile` (quick; skipped when already seeded), one uvloop event
loop for every call, and results stored under `<state folder>/micro` unless `--benchmark-storage`
says otherwise. A bad profile or a server that cannot be had ends the session in one line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop

from pairbench.errors import EXIT_UNTRUSTED, EXIT_USAGE, PairbenchError
from pairbench.harness import downstream, metadata, postgres, services
from pairbench.results.io.microbench import MICRO_STORAGE
from pairbench.targets import seeding
from pairbench.targets.data import PROFILES, DatasetError
from pairbench.targets.registry import (
    MICRO_REDIS_DATABASE,
    MicroCore,
    MicroServers,
    Pair,
    PairError,
    load_pairs,
)

DEFAULT_PROFILE = "quick"
PROFILE_OPTION = "--micro-profile"
BENCHMARK_STORAGE_DEFAULT = "file://./.benchmarks"  # pytest-benchmark's own default
STORAGE_FOLDER = MICRO_STORAGE  # under the state folder; `pairbench report` reads it there


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        PROFILE_OPTION,
        default=DEFAULT_PROFILE,
        help=f"the data profile the micro pairs are seeded with (default {DEFAULT_PROFILE})",
    )


def _fail(message: str, code: int) -> None:
    """End the session with one line and the documented exit code."""
    pytest.exit(f"pairbench: error: {message}", returncode=code)


def profile_of(config: pytest.Config) -> str:
    """The data profile `--micro-profile` names."""
    profile: str = config.getoption(PROFILE_OPTION, default=DEFAULT_PROFILE)
    return profile


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark opens its storage
def pytest_configure(config: pytest.Config) -> None:
    profile = profile_of(config)
    if profile not in PROFILES:
        _fail(
            f"{PROFILE_OPTION} {profile}: unknown profile (known: {', '.join(PROFILES)})",
            EXIT_USAGE,
        )
    if config.getoption("benchmark_storage", default=None) == BENCHMARK_STORAGE_DEFAULT:
        config.option.benchmark_storage = f"file://{services.state_dir() / STORAGE_FOLDER}"


def pytest_benchmark_update_machine_info(
    config: pytest.Config, machine_info: dict[str, Any]
) -> None:
    """pairbench's own machine record beside pytest-benchmark's: the fields a run stores in
    run.json's `metadata.machine`, so `pairbench report` matches the two exactly."""
    machine_info["pairbench"] = metadata.machine()


def pytest_benchmark_update_commit_info(config: pytest.Config, commit_info: dict[str, Any]) -> None:
    """pairbench's git record (`metadata.git` of a run): its `dirty` counts untracked files,
    as a run's does, where pytest-benchmark's `git describe --dirty` does not."""
    commit_info["pairbench"] = metadata.git()


@dataclass
class MicroSession:
    """The servers, the loop every core runs on, and each pair's entered micro setup."""

    loop: uvloop.Loop
    servers: MicroServers
    stack: contextlib.AsyncExitStack[Any]
    profile: str
    bound: dict[str, MicroServers] = field(default_factory=dict)

    def servers_for(self, pair: Pair) -> MicroServers:
        """The servers with `pair`'s micro setup entered (once, until the session ends)."""
        if pair.name not in self.bound:
            entered = self.stack.enter_async_context(pair.micro_servers(self.servers))
            self.bound[pair.name] = self.loop.run_until_complete(entered)
        return self.bound[pair.name]

    def run(self, core: MicroCore, on: MicroServers) -> Any:
        """One call of `core`, to completion, on the session's loop."""
        return self.loop.run_until_complete(core(on))


@pytest.fixture(scope="session")
def micro(pytestconfig: pytest.Config) -> Iterator[MicroSession]:
    """Servers for the session, the micro pairs seeded with the chosen profile."""
    profile = profile_of(pytestconfig)
    loop = uvloop.new_event_loop()
    try:
        pairs = load_pairs()
        seeded = [p.name for p in pairs.values() if p.micros and p.tables]
        needed = max((p.server.max_connections for p in pairs.values() if p.micros), default=None)
        options = services.ServiceOptions.from_env()
        with (
            services.provide(options, postgres.needed_connections(needed)) as endpoints,
            # For cores that call it, handed over as the app gets it (targets/downstream.py).
            downstream.provide(
                any(p.server.downstream for p in pairs.values() if p.micros),
                services.state_dir(),
                services.state_dir() / "micro-downstream.log",
            ) as service,
        ):
            if service is not None:
                os.environ.update(service.env())
            if seeded:
                loop.run_until_complete(seeding.seed(endpoints.pg_dsn, profile, seeded))
            redis_url = services.redis_database(endpoints.redis_url, MICRO_REDIS_DATABASE)
            stack = contextlib.AsyncExitStack()
            opened = MicroServers.open(endpoints.pg_dsn, redis_url, pairs)
            servers = loop.run_until_complete(stack.enter_async_context(opened))
            try:
                yield MicroSession(loop, servers, stack, profile)
            finally:
                loop.run_until_complete(stack.aclose())
    except PairbenchError as e:
        _fail(str(e), e.exit_code)
    except (DatasetError, PairError) as e:
        _fail(str(e), EXIT_USAGE)
    except OSError as e:  # a server that went away mid-session, a refused connection
        _fail(f"micro suite: {e}", EXIT_UNTRUSTED)
    finally:
        loop.close()


def _ratios(benchmarks: list[Any]) -> list[str]:
    """`pair: bad / good = Nx` per pair and (bad, good) core, on medians."""
    lines = []
    groups: dict[str, list[Any]] = {}
    for bench in benchmarks:
        if bench.stats and "pair" in bench.extra_info:
            groups.setdefault(bench.extra_info["pair"], []).append(bench)
    for pair, benches in groups.items():
        bad = [b for b in benches if b.extra_info["role"] == "bad"]
        good = [b for b in benches if b.extra_info["role"] == "good"]
        for b in bad:
            for g in good:
                ratio = b.stats.median / g.stats.median
                knob = b.extra_info["knob"]
                at = "" if knob is None else f" at {b.extra_info['knob_name']}={knob:g}"
                lines.append(
                    f"{pair}: {b.extra_info['variant']} / {g.extra_info['variant']}"
                    f" = {ratio:.2f}x{at} (medians {b.stats.median * 1e6:.1f} µs"
                    f" / {g.stats.median * 1e6:.1f} µs)"
                )
    return lines


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's table
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    lines = _ratios(list(getattr(session, "benchmarks", [])))
    if lines:
        terminalreporter.write_sep("-", "micro ratios (bad / good, medians)")
        for line in lines:
            terminalreporter.write_line(line)
