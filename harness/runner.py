"""One run: services, seed, target server, then per pair verify and measure in interleaved rounds.

Every trial is appended to run.json as soon as it finishes (atomic rewrite), so an interrupted
or failed run keeps what it measured. Rounds follow the randomized interleaved protocol: each
round runs every variant once, in a freshly shuffled (seeded, recorded) order.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from pairbench import runmodel
from pairbench.atomicfile import write_text_atomic
from pairbench.errors import InfrastructureError, Interrupted, UsageError

from . import (
    baseline,
    capacity,
    catalogue,
    downstream,
    external,
    group,
    link,
    metadata,
    pinning,
    postgres,
    procs,
    request,
    rounds,
    scenario,
    seeding,
    server,
    services,
    verify,
    worker,
)
from .catalogue import PairInfo
from .load import LoadAgent
from .rounds import Stopper, TrialStep


@dataclass
class RunOptions:
    """Everything a run depends on; stored in run.json so `--from` can replay it later."""

    pairs: list[str]
    profile: str
    out: Path
    seed: int
    services: services.ServiceOptions = field(default_factory=services.ServiceOptions)
    verify_only: bool = False
    capacity: bool = False  # find each variant's capacity instead of measuring rounds
    # Set when replaying a stored run (`--from`): its scenarios and profile, not today's files.
    scenarios: list[scenario.Scenario] | None = None
    suite: scenario.Profile | None = None
    reproduces: str | None = None
    # The data's seed (None: the targets' default) and, when replaying, the sizes each pair
    # had in the stored run: today's must match or the replay is refused.
    data_seed: int | None = None
    expected_sizes: dict[str, dict[str, int]] | None = None
    # Load generation: local worker processes, workers expected from other machines.
    processes: int = 1
    remote_workers: int = 0
    master_bind: str = "127.0.0.1"
    master_port: int = 0
    # CPU isolation: `auto`, `on` or `off` (harness/pinning.py, docs/architecture.md).
    pin: str = "auto"
    # An interleaved gate: this version of the targets is served beside the new one, and every
    # round runs both versions' variants in one shuffled order (docs/architecture.md, The gate).
    baseline: baseline.Baseline | None = None
    # Injected slowdown for testing the gate: {"pair/variant": 0.2} on the new side's server.
    slowdown: dict[str, float] | None = None
    # `run --rounds N`: a fixed count of rounds for every pair instead of its profile's rule.
    rounds: int | None = None
    # The adaptive stopping rule; the command line hands in results/analysis/stopping.py's,
    # which the engine may not import (docs/architecture.md, Layers).
    stopper: Stopper | None = None
    # `run --target URL`: a targets app served elsewhere; nothing is started but the load
    # generator (docs/architecture.md, "A target elsewhere").
    target: str | None = None


@dataclass
class Progress:
    """Callbacks the CLI uses to draw progress; the runner works without them."""

    total: Callable[[int], None] = lambda n: None
    # A trial about to run (capacity's ramp tells its steps as plain lines).
    step: Callable[[TrialStep | str], None] = lambda trial: None
    message: Callable[[str], None] = lambda text: None
    skip: Callable[[int], None] = lambda n: None  # trials an adaptive stop made unnecessary
    # The run's folder, once it has its id: where run.json appears and is rewritten after
    # every trial (the live view reads it there: docs/architecture.md, "The live view").
    begun: Callable[[Path], None] = lambda folder: None


@dataclass
class RunOutcome:
    """What the CLI needs to decide the exit code."""

    run_dir: Path | None
    run: dict[str, Any]
    failed_verification: list[str]
    invalid_trials: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _run_id(pairs: list[str]) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = pairs[0] if len(pairs) == 1 else f"{len(pairs)}-pairs"
    return f"{stamp}-{name}"


class Run:
    """Holds run.json in memory and rewrites it atomically after each change."""

    def __init__(self, options: RunOptions, scenarios: list[scenario.Scenario]) -> None:
        self.options = options
        self.run_id = _run_id([s.key for s in scenarios])
        self.dir = options.out / self.run_id
        self.logs = services.state_dir() / "logs"  # server and agent logs, by run id
        self.logs.mkdir(exist_ok=True)
        self.doc: dict[str, Any] = {
            "schema_version": runmodel.SCHEMA_VERSION,
            "run_id": self.run_id,
            "status": "running",
            "started_at": _now(),
            "finished_at": None,
            "profile": options.profile,
            "seed": options.seed,
            "command": [metadata.redact(arg) for arg in sys.argv],  # --pg-dsn may hold a password
            "metadata": metadata.collect(),
            "pairs": {},
        }
        self.saved_trials = 0  # trials in the last run.json written

    def save(self) -> None:
        """Rewrite run.json; a folder that cannot take it is an infrastructure error naming it.

        The write is atomic, so a failed one leaves the last good run.json as it was.
        """
        if self.options.verify_only:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            # Through the one run model: the writer never stores a run the reader would refuse.
            write_text_atomic(self.dir / runmodel.RUN_FILE, runmodel.dump(self.doc))
        except OSError as e:
            code = errno.errorcode.get(e.errno or 0, "")
            kept = (
                f"the last good run.json ({self.saved_trials} trial(s)) is kept"
                if self.saved_trials
                else "no run.json was written"
            )
            reason = e.strerror or str(e)
            raise InfrastructureError(
                f"cannot write the results folder {self.dir}: {reason} ({code}); {kept}"
            ) from e
        self.saved_trials = self.trials()

    def trials(self) -> int:
        """Trials measured so far, both sides of a gate."""
        sides = [self.doc["pairs"], (self.doc.get("baseline") or {}).get("pairs") or {}]
        return sum(len(p.get("trials", [])) for side in sides for p in side.values())

    def finish(self, status: str) -> None:
        self.doc["status"] = status
        self.doc["finished_at"] = _now()
        self.save()


def _capacity(
    pair: PairInfo,
    load: scenario.LoadProfile,
    agent: LoadAgent,
    target: server.TargetServer,
    client: httpx.Client,
    rng: random.Random,
    progress: Progress,
) -> dict[str, Any]:
    spec = pair.scenario.capacity
    if spec is None:
        raise UsageError(f"{pair.scenario.source}: no [capacity] table: nothing to ramp")
    knob = max(load.knob_values) if spec.knob == "max" else spec.knob
    result = capacity.measure(
        agent,
        pair,
        request.for_variants(pair, client, knob),
        spec,
        _metrics_url(target),
        load.max_generator_cpu_percent,
        rng,
        progress.step,
        lambda: rounds.reset(client, pair),
    )
    return {"knob": knob, **result}


class _Session:
    """What one run holds open: the target, an HTTP client, and the agent once a pair needs it."""

    def __init__(
        self,
        run: Run,
        options: RunOptions,
        target: server.TargetServer,
        client: httpx.Client,
        rng: random.Random,
        progress: Progress,
        datasets: dict[str, seeding.PairDataset],
        endpoints: services.Endpoints | None,  # None: a target elsewhere, no links
    ) -> None:
        self.run, self.options, self.target, self.client = run, options, target, client
        self.endpoints = endpoints
        self.datasets = datasets
        self.rng, self.progress = rng, progress
        self.agent: LoadAgent | None = None
        self.pins = pinning.plan("off")  # execute() sets the run's
        self.failed: list[str] = []
        self.invalid = 0
        self.base: _BaseSide | None = None
        self.downstream: downstream.RunningDownstream | None = None
        self.worker_pairs: set[str] = set()  # pairs whose jobs the job worker runs
        self.group_pairs: dict[str, list[str]] = {}  # pairs the process group serves

    def start_agent(self) -> None:
        """Spawn the load generator without waiting for it: it imports locust (and a master
        waits for its workers) while the first pair is verified, which measures nothing."""
        if self.agent is None:
            o = self.options
            with self.pins.role("load"):  # its local workers inherit the set
                self.agent = LoadAgent(
                    self.target.url,
                    self.run.logs / f"{self.run.run_id}-agent.log",
                    o.processes,
                    o.remote_workers,
                    o.master_bind,
                    o.master_port,
                    wait=False,
                )
            if o.remote_workers:  # what to start elsewhere (docs/distributed.md)
                self.progress.message(
                    f"waiting for {o.remote_workers} remote worker(s): pairbench worker --master"
                    f" {o.master_bind}:{o.master_port} --host {self.target.url}"
                )

    def load_agent(self) -> LoadAgent:
        """The load generator, ready; started here if `start_agent` was not called."""
        self.start_agent()
        assert self.agent is not None
        meta = self.run.doc["metadata"]
        if "locust" not in meta:
            o = self.options
            meta["load_generator"] = {"processes": o.processes, "remote_workers": o.remote_workers}
            meta["locust"] = self.agent.wait_ready()
            meta["timing"]["agent_ready_s"] = round(self.agent.ready_s, 3)
            meta["timing"]["agent_wait_s"] = round(self.agent.waited_s, 3)
            if self.agent.workers is not None:  # every host that generates load
                meta["load_generator"]["workers"] = self.agent.workers
        return self.agent

    def pair(self, pair: PairInfo, load: scenario.LoadProfile) -> None:
        """Verify one pair, then (unless only verifying) measure it or find its capacity.

        A pair served by the process group gets the group for its own turn (docs/architecture.md,
        "The process group"): the group's target and a client of it replace the run's.
        """
        alone = self.group_pairs.get(pair.name)
        # An interleaved gate's baseline has no group: both sides then serve the pair from their
        # one process, so base and new stay alike.
        if alone is None or self.endpoints is None or self.base is not None:
            self._with_worker(pair, load)
            return
        with contextlib.ExitStack() as started:
            with self.pins.role("target"):  # the members are the target: its CPU set (--pin)
                members = started.enter_context(
                    group.provide(
                        [pair.name],
                        self.endpoints.pg_dsn,
                        self.endpoints.redis_url,
                        self.run.logs,
                        f"{self.run.run_id}-{pair.name}",
                        self.downstream.env() if self.downstream is not None else None,
                    )
                )
            self.run.doc["metadata"]["group"] = members.describe()
            target = members.target(alone)
            watching = members.watching()
            try:
                with httpx.Client(base_url=target.url, timeout=verify.REQUEST_TIMEOUT_S) as client:
                    main = self.target, self.client
                    self.target, self.client = target, client
                    try:
                        self._with_worker(pair, load)
                    finally:
                        self.target, self.client = main
            finally:
                watching.close()  # nothing is watched while it is being stopped

    def _with_worker(self, pair: PairInfo, load: scenario.LoadProfile) -> None:
        """The pair's turn, with the job worker when its jobs run there.

        A pair whose jobs run in the job worker gets the worker for its own turn only
        (docs/architecture.md, "The job worker"): a worker idling beside the other pairs polls
        Redis, and the Redis commands counted per request are server-wide.
        """
        base = self.base
        base_needs = base is not None and pair.scenario.pair in base.worker_pairs
        if (pair.name not in self.worker_pairs and not base_needs) or self.endpoints is None:
            self._linked_or_not(pair, load)
            return
        service_env = self.downstream.env() if self.downstream is not None else None
        with contextlib.ExitStack() as workers, contextlib.ExitStack() as watching:
            if pair.name in self.worker_pairs:
                jobs_worker = workers.enter_context(
                    worker.provide(
                        [pair.name],
                        self.endpoints.pg_dsn,
                        self.endpoints.redis_url,
                        services.state_dir(),
                        self.run.logs / f"{self.run.run_id}-worker.log",
                        service_env,
                    )
                )
                if jobs_worker is not None:
                    self.run.doc["metadata"]["worker"] = jobs_worker.describe()
                    watching.enter_context(
                        procs.watched("the job worker", jobs_worker.popen, jobs_worker.log)
                    )
            if base is not None and base_needs:
                # The baseline's queue (its own Redis database) gets the baseline's worker,
                # its own code: without one, its jobs would wait forever.
                base_worker = workers.enter_context(
                    worker.provide(
                        [pair.scenario.pair],
                        base.pg_dsn,
                        base.redis_url,
                        services.state_dir(),
                        self.run.logs / f"{self.run.run_id}-baseline-worker.log",
                        service_env,
                        interpreter=base.interpreter,
                    )
                )
                if base_worker is not None:
                    self.run.doc["baseline"]["worker"] = base_worker.describe()
                    watching.enter_context(
                        procs.watched(
                            "the baseline's job worker", base_worker.popen, base_worker.log
                        )
                    )
            try:
                self._linked_or_not(pair, load)
            finally:
                watching.close()  # nothing is watched while it is being stopped

    def _linked_or_not(self, pair: PairInfo, load: scenario.LoadProfile) -> None:
        """A pair whose scenario declares links is served by a target of its own behind them
        (docs/architecture.md, "The link emulator"); the other pairs never cross a proxy."""
        spec = pair.scenario.link_for(load)
        if spec is None:
            self._pair(pair, load)
            return
        if self.base is not None:
            raise UsageError(
                f"{pair.scenario.source}: [link]: an interleaved gate cannot run a pair across"
                " links yet; gate it without one"
            )
        assert self.endpoints is not None  # refused for a target elsewhere before it starts
        with (
            link.serve_through(
                _shape(spec.client),
                _shape(spec.db),
                self.endpoints.pg_dsn,
                self.endpoints.redis_url,
                self.target,
                self.run.logs,
                f"{self.run.run_id}-{pair.name}",
                pair=pair.scenario.pair,  # the targets pair (the scenario may be named apart)
                rtt_from_knob=pair.scenario.knob_sets == "db_rtt_ms",
                mbit_from_knob=pair.scenario.knob_sets == "client_mbit",
            ) as linked,
            httpx.Client(base_url=linked.target.url, timeout=verify.REQUEST_TIMEOUT_S) as client,
        ):
            self.progress.message(f"{pair.name}: across {linked.description()}")
            main = self.target, self.client
            self.target, self.client = linked.target, client
            try:
                self._pair(pair, load, linked)
            finally:
                self.target, self.client = main
                record = self.run.doc["pairs"].get(pair.name)
                if record is not None:
                    with contextlib.suppress(InfrastructureError):  # a dead proxy: said elsewhere
                        record["link"]["proxies"] = linked.usage()

    def _pair(
        self, pair: PairInfo, load: scenario.LoadProfile, linked: link.Linked | None = None
    ) -> None:
        record = {
            **pair.record(),
            "load": load.model_dump(),
            "scenario": pair.scenario.model_dump(exclude={"source"}),
            "expectation": _expectation(pair, load),
            "dataset": (
                self.datasets[pair.scenario.pair].record()
                if pair.scenario.pair in self.datasets
                else None
            ),
            "trials": [],
        }
        if linked is not None:
            record["link"] = linked.record()
        record["knob"]["values"] = load.knob_values
        record["downstream"] = self._configure_downstream(pair)
        verifying = time.perf_counter()
        outcome = verify.verify_pair(self.client, pair, load.knob_values)
        record["verification"] = outcome.record()
        record["timing"] = {"verify_s": round(time.perf_counter() - verifying, 3)}
        self.run.doc["pairs"][pair.name] = record
        self.run.save()
        bad = outcome.first_failure
        if bad is not None:
            self.failed.append(pair.name)
            self.progress.message(
                f"{pair.name}: verification FAILED, not measured: "
                f"{bad.name} at {pair.knob.name}={bad.knob:g} for {bad.variant}: {bad.detail}"
            )
            return
        self.progress.message(f"{pair.name}: verified ({len(outcome.checks)} checks passed)")
        if self.options.verify_only:
            return
        agent = self.load_agent()
        base = self.base.side(pair, record, load, self) if self.base is not None else None
        if base is not None:
            new = rounds.Side("new", self.target, self.client, pair, record)
            self.invalid += rounds.measure_sides(
                [new, base],
                self.run.save,
                load,
                agent,
                self.rng,
                self.progress.step,
                self.progress.skip,
                self.options.stopper,
            )
            self.progress.message(_timing_line(pair.name, record["timing"]))
            return
        if self.options.capacity:
            record["capacity"] = _capacity(
                pair, load, agent, self.target, self.client, self.rng, self.progress
            )
            self.run.save()
        else:
            self.invalid += rounds.measure_pair(
                record,
                self.run.save,
                pair,
                load,
                agent,
                self.target,
                self.client,
                self.rng,
                self.progress.step,
                self.progress.skip,
                self.options.stopper,
                at_knob=linked.at_knob() if linked is not None else None,
                absolute=linked is not None or bool(self.target.variant_urls),
            )
            self.progress.message(_timing_line(pair.name, record["timing"]))
            self.progress.message(_rounds_line(pair.name, record))

    def _configure_downstream(self, pair: PairInfo) -> dict[str, Any] | None:
        """The downstream's settings for this pair: its scenario's [downstream] table, else the
        defaults, applied before its verification (docs/architecture.md, "The downstream
        service"); None when the run has no service."""
        if self.downstream is None:  # a [downstream] table without it: refused at the start
            return None
        wanted = pair.scenario.downstream or scenario.DownstreamTable()
        settings = self.downstream.configure(wanted.concurrency, wanted.over_limit)
        return {"concurrency": settings.concurrency, "over_limit": settings.over_limit}

    def close(self) -> None:
        if self.agent is not None:
            self.agent.close()


@dataclass
class _BaseSide:
    """The baseline's server in an interleaved gate, and where its pair records go."""

    target: server.TargetServer
    client: httpx.Client
    served: catalogue.Catalogue
    records: dict[str, Any]  # run.json's baseline.pairs
    datasets: dict[str, seeding.PairDataset]
    # What the baseline's job worker needs (docs/architecture.md, "The job worker"): the
    # baseline's pairs that declare one, its database, Redis database and code.
    worker_pairs: set[str]
    pg_dsn: str
    redis_url: str
    interpreter: procs.Interpreter

    def side(
        self, pair: PairInfo, record: dict[str, Any], load: scenario.LoadProfile, session: _Session
    ) -> rounds.Side | None:
        """The pair on the baseline's server, verified; None (and the reason stored in the
        baseline's record of it) when the baseline cannot be measured against it."""
        if pair.scenario.pair not in self.served.pairs:
            session.progress.message(f"{pair.name}: not in the baseline: measured for new only")
            return None
        try:
            base_pair = catalogue.resolve(pair.scenario, self.served)
        except UsageError as e:
            session.progress.message(f"{pair.name}: the baseline cannot run today's scenario: {e}")
            return None
        base_record = {
            **base_pair.record(),
            "load": record["load"],
            "scenario": record["scenario"],
            "expectation": record["expectation"],
            "dataset": (
                self.datasets[pair.scenario.pair].record()
                if pair.scenario.pair in self.datasets
                else None
            ),
            "trials": [],
        }
        base_record["knob"]["values"] = load.knob_values
        verifying = time.perf_counter()
        outcome = verify.verify_pair(self.client, base_pair, load.knob_values)
        base_record["verification"] = outcome.record()
        base_record["timing"] = {"verify_s": round(time.perf_counter() - verifying, 3)}
        self.records[pair.name] = base_record
        session.run.save()
        bad = outcome.first_failure
        if bad is not None:
            session.progress.message(
                f"{pair.name}: the baseline FAILED verification, not compared: "
                f"{bad.name} for {bad.variant}: {bad.detail}"
            )
            return None
        return rounds.Side("base", self.target, self.client, base_pair, base_record)


def _timing_line(name: str, timing: dict[str, Any]) -> str:
    """The log's line on where a pair's measurement time went (docs/run-format.md, timing)."""
    trials = timing.get("trials", 0)
    per = timing.get("overhead_s", 0.0) / trials if trials else 0.0
    return (
        f"{name}: {trials} trials, {timing.get('load_s', 0.0):.1f} s under load, "
        f"{timing.get('overhead_s', 0.0):.1f} s overhead ({per:.3f} s a trial); "
        f"warm-ups {timing.get('warmup_s', 0.0):.1f} s, verification {timing['verify_s']:.1f} s"
    )


def _rounds_line(name: str, record: dict[str, Any]) -> str:
    """The log's line on how many rounds each knob value ran and why it stopped."""
    stopping = record.get("stopping") or {}
    knob = record["knob"]["name"]
    parts = []
    for key, stop in (stopping.get("knobs") or {}).items():
        widest = stop.get("widest_half_width")
        width = f" +-{widest:.1%}" if widest is not None else ""
        parts.append(f"{knob}={key}: {stop['rounds']}{width}")
    rule = stopping.get("rule")
    how = (
        f"adaptive, {rule['min_rounds']}..{rule['max_rounds']} rounds to +-{rule['precision']:.0%}"
        if rule
        else "fixed"
    )
    stopped_at_max = [
        k for k, s in (stopping.get("knobs") or {}).items() if s["reason"] == "max_rounds"
    ]
    tail = (
        f"; at the maximum with something open: {', '.join(stopped_at_max)}"
        if stopped_at_max
        else ""
    )
    return f"{name}: rounds ({how}; widest judged interval): {', '.join(parts)}{tail}"


@contextlib.contextmanager
def _phase(timing: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall time to `timing[name]` (seconds), however it ends."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timing[name] = round(timing.get(name, 0.0) + time.perf_counter() - started, 3)


def _metrics_url(target: server.TargetServer) -> str:
    """The after-scrape URL of the target's /metrics."""
    return target.url + "/metrics"


def _record_services(run: Run, endpoints: services.Endpoints) -> None:
    run.doc["metadata"].update(
        {
            "postgres": metadata.postgres(endpoints.pg_dsn, endpoints.pg_source),
            "redis": metadata.redis_info(endpoints.redis_url, endpoints.redis_source),
            "services_startup_seconds": endpoints.startup_seconds,
        }
    )


def _seed_line(name: str, seeded: seeding.PairDataset) -> str:
    rows = ", ".join(f"{n:,} {t}" for t, n in seeded.rows.items())
    done = "already seeded" if seeded.skipped else "seeded"
    return f"{name}: dataset {done} in {seeded.seconds:.2f} s ({rows})"


def execute(options: RunOptions, progress: Progress | None = None) -> RunOutcome:
    """Verify and (unless verify_only) measure the selected pairs; always leaves run.json."""
    progress = progress or Progress()
    scenarios = options.scenarios or scenario.select(options.pairs)
    suite = options.suite or scenario.profile(options.profile)
    data_profile = suite.data_profile(options.profile)
    _one_record_each(scenarios)
    loads = {s.key: s.load(options.profile) for s in scenarios}
    if options.rounds is not None:
        loads = {name: load.fixed(options.rounds) for name, load in loads.items()}
    # A target this run does not start is reached and checked before run.json exists: one
    # that does not answer leaves no folder behind (docs/architecture.md, "A target elsewhere").
    elsewhere = external.check(options.target, scenarios, loads, options.baseline is not None)
    run = Run(options, scenarios)
    progress.begun(run.dir)
    run.doc["profile_config"] = suite.model_dump()
    run.doc["reproduces"] = options.reproduces
    run.doc["rounds"] = options.rounds
    rng = random.Random(options.seed)
    if elsewhere is not None:
        return _execute_elsewhere(options, scenarios, loads, run, rng, progress, elsewhere)
    session: _Session | None = None
    status = "failed"
    names = list(dict.fromkeys(s.pair for s in scenarios))
    # Where start-up time goes (docs/run-format.md, metadata.timing).
    timing: dict[str, float] = run.doc["metadata"].setdefault("timing", {})
    pins = pinning.plan(options.pin)
    run.doc["metadata"]["pinning"] = pins.describe()
    try:
        # The targets' own description, before any server starts: it says what the servers
        # must allow (max_connections) and which of the run's pairs own tables to seed.
        with _phase(timing, "describe_s"):
            described = catalogue.describe()
        if options.expected_sizes is not None:
            seeding.check_sizes(described, data_profile, options.expected_sizes)
        _downstream_tables(scenarios, described)
        connections = postgres.needed_connections(described.max_connections(names))
        starting = time.perf_counter()
        with (
            _entered(
                pins, "services", services.provide(options.services, connections)
            ) as endpoints,
            # Only for runs with a pair that calls it (docs/architecture.md, "The downstream
            # service"); stopped after the target, before PostgreSQL and Redis.
            _entered(
                pins,
                "services",
                downstream.provide(
                    described.needs_downstream(names),
                    services.state_dir(),
                    run.logs / f"{run.run_id}-downstream.log",
                ),
            ) as service,
        ):
            timing["services_s"] = round(time.perf_counter() - starting, 3)
            # Every long-lived process of the run is watched until it is stopped on purpose:
            # one that dies ends the run in one line naming it and its log, whatever error its
            # death caused first (docs/architecture.md, "Owning the process tree").
            watching = _watch_services(endpoints, service)
            try:
                progress.message(_services_line(endpoints))
                with _phase(timing, "seeding_s"):
                    datasets = seeding.seed(
                        endpoints.pg_dsn,
                        data_profile,
                        seeding.seedable(described, names),
                        options.data_seed,
                    )
                for name, seeded in datasets.items():
                    progress.message(_seed_line(name, seeded))
                _record_services(run, endpoints)
                if service is not None:
                    run.doc["metadata"]["downstream"] = service.describe()
                with _phase(timing, "target_s"), pins.role("target"):
                    target = server.start(
                        endpoints.pg_dsn,
                        endpoints.redis_url,
                        run.logs / f"{run.run_id}-server.log",
                        host=server.bind_host(),
                        extra_env=service.env() if service is not None else None,
                        slowdown=options.slowdown,
                        pairs=names,
                    )
            except Exception as e:
                procs.blame_dead(e)
                raise
            finally:
                watching.close()
            base_target: server.TargetServer | None = None
            watching = _watch_services(endpoints, service)
            try:
                watching.enter_context(procs.watched("the target server", target.popen, target.log))
                run.doc["metadata"]["server"] = target.describe()
                served = catalogue.fetch(target.url)
                pairs = [catalogue.resolve(s, served) for s in scenarios]
                sides = 1
                if options.baseline is not None:
                    base_target, base_datasets, base_servers = _start_baseline(
                        options.baseline,
                        run,
                        endpoints,
                        data_profile,
                        names,
                        datasets,
                        progress,
                        service.env() if service is not None else None,
                    )
                    watching.enter_context(
                        procs.watched(
                            "the baseline's target server", base_target.popen, base_target.log
                        )
                    )
                    sides = 2
                # At most: an adaptive knob value that stops early takes its trials off.
                trials = sum(
                    len(loads[p.name].knob_values)
                    * loads[p.name].most_rounds
                    * len(p.variants)
                    * sides
                    for p in pairs
                )
                progress.total(0 if options.verify_only or options.capacity else trials)
                with contextlib.ExitStack() as clients:
                    client = clients.enter_context(
                        httpx.Client(base_url=target.url, timeout=verify.REQUEST_TIMEOUT_S)
                    )
                    session = _Session(
                        run, options, target, client, rng, progress, datasets, endpoints
                    )
                    session.downstream = service
                    session.worker_pairs = set(described.worker_pairs(names))
                    session.group_pairs = described.group_pairs(names)
                    session.pins = pins
                    if not options.verify_only:
                        session.start_agent()
                    if base_target is not None:
                        base_client = clients.enter_context(
                            httpx.Client(base_url=base_target.url, timeout=verify.REQUEST_TIMEOUT_S)
                        )
                        session.base = _BaseSide(
                            base_target,
                            base_client,
                            catalogue.fetch(base_target.url),
                            run.doc["baseline"]["pairs"],
                            base_datasets,
                            *base_servers,
                        )
                    for pair in pairs:
                        session.pair(pair, loads[pair.name])
            except Exception as e:
                procs.blame_dead(e)
                raise
            finally:
                watching.close()  # nothing is watched while it is being stopped
                if session is not None:
                    session.close()
                if base_target is not None:
                    base_target.stop()
                target.stop()
        status = "complete"
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt | Interrupted) else "failed"
        raise
    finally:
        _finish(run, status, progress)
    failed, invalid = (session.failed, session.invalid) if session else ([], 0)
    return RunOutcome(None if options.verify_only else run.dir, run.doc, failed, invalid)


def _execute_elsewhere(
    options: RunOptions,
    scenarios: list[scenario.Scenario],
    loads: dict[str, scenario.LoadProfile],
    run: Run,
    rng: random.Random,
    progress: Progress,
    elsewhere: external.Elsewhere,
) -> RunOutcome:
    """`execute` for a target this run does not start (docs/architecture.md, "A target
    elsewhere"): a targets app at --target, or a service of your own at its scenarios'
    base_url. No PostgreSQL, Redis or server is started; the rounds are the same.

    Seeding: a targets app elsewhere seeded its own data when it started (`pairbench serve`
    does), unless the run is given the target's database (--pg-dsn or PAIRBENCH_PG_DSN),
    which it then seeds for its profile as a local run would. A service of your own is never
    seeded.
    """
    session: _Session | None = None
    status = "failed"
    timing: dict[str, float] = run.doc["metadata"].setdefault("timing", {})
    url, kind, served = elsewhere.url, elsewhere.kind, elsewhere.served
    try:
        configured = [s for s in scenarios if s.downstream is not None]
        if configured:  # the service is the target's own there: this run cannot set it
            raise UsageError(
                f"{configured[0].source}: [downstream]: a target elsewhere runs its own downstream"
                " service; set it where the target runs (run the pair locally to use this table)"
            )
        datasets: dict[str, seeding.PairDataset] = {}
        version: str | None = None
        seeded = "never: a service of your own"
        if kind == external.TARGETS:
            version = served.version
            names = list(dict.fromkeys(s.pair for s in scenarios))
            dsn = options.services.pg_dsn
            seeded = "by the target when it started"
            if dsn is not None:
                suite = options.suite or scenario.profile(options.profile)
                with _phase(timing, "seeding_s"):
                    datasets = seeding.seed(
                        dsn,
                        suite.data_profile(options.profile),
                        seeding.seedable(elsewhere.local, names),
                        options.data_seed,
                    )
                for name, one in datasets.items():
                    progress.message(_seed_line(name, one))
                seeded = f"by this run, into {options.services.origin('pg_dsn')}"
        target = external.ExternalTarget(
            url=url,
            pid=0,
            log=run.logs / f"{run.run_id}-server.log",  # named in messages, never written
            argv=[],
            popen=None,
            kind=kind,
            version=version,
            seeding=seeded,
        )
        run.doc["metadata"]["server"] = target.describe()
        run.doc["metadata"]["target"] = target.record()
        who = f"pairbench {version}; seeded {seeded}" if version else "a service of your own"
        progress.message(f"target: {url} ({who})")
        pairs = [catalogue.resolve(s, served) for s in scenarios]
        trials = sum(
            len(loads[p.name].knob_values) * loads[p.name].most_rounds * len(p.variants)
            for p in pairs
        )
        progress.total(0 if options.verify_only or options.capacity else trials)
        with httpx.Client(base_url=url, timeout=verify.REQUEST_TIMEOUT_S) as client:
            session = _Session(run, options, target, client, rng, progress, datasets, None)
            if not options.verify_only:
                session.start_agent()
            for pair in pairs:
                session.pair(pair, loads[pair.name])
        status = "complete"
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt | Interrupted) else "failed"
        raise
    finally:
        if session is not None:
            session.close()
        _finish(run, status, progress)
    failed, invalid = (session.failed, session.invalid) if session else ([], 0)
    return RunOutcome(None if options.verify_only else run.dir, run.doc, failed, invalid)


def _downstream_tables(scenarios: list[scenario.Scenario], described: catalogue.Catalogue) -> None:
    """A [downstream] table only where the pair calls the service: refused before anything starts."""
    for s in scenarios:
        if s.downstream is not None and not described.needs_downstream([s.pair]):
            raise UsageError(
                f"{s.source}: [downstream]: pair {s.pair!r} does not call the downstream"
                " service (it declares no ServerNeeds(downstream=True))"
            )


def _one_record_each(scenarios: list[scenario.Scenario]) -> None:
    """Two scenarios of one pair need different names (`name = ...`): run.json keys by it."""
    seen: dict[str, str] = {}
    for each in scenarios:
        if each.key in seen:
            raise UsageError(
                f"{each.source}: records as {each.key!r} like {seen[each.key]}: give it a name"
                " of its own (name = ...)"
            )
        seen[each.key] = each.source


def _shape(side: scenario.LinkSide | None) -> link.Shape | None:
    return None if side is None else link.Shape(side.mbit, side.rtt_ms)


def _watch_services(
    endpoints: services.Endpoints,
    service: downstream.RunningDownstream | None = None,
    jobs_worker: worker.RunningWorker | None = None,
) -> contextlib.ExitStack:
    """Watch the servers this run started (procs.watched) until the stack is closed."""
    stack = contextlib.ExitStack()
    for started in endpoints.started:
        if started.popen is not None:
            stack.enter_context(procs.watched(_component(started), started.popen, started.log))
    if service is not None:
        stack.enter_context(procs.watched("the downstream service", service.popen, service.log))
    if jobs_worker is not None:
        stack.enter_context(procs.watched("the job worker", jobs_worker.popen, jobs_worker.log))
    return stack


def _component(started: Any) -> str:
    """How a line names a server the run started: PostgreSQL, or the Redis server's binary."""
    if isinstance(started, postgres.RunningPostgres):
        return "PostgreSQL"
    binary = os.path.basename(str(started.popen.args[0])) if started.popen else "redis"
    return f"Redis ({binary})"


def _finish(run: Run, status: str, progress: Progress) -> None:
    """Store the final status; when the run did not complete, say how many trials run.json kept.

    A run that already failed keeps its own error: a results folder that cannot take the last
    write is then reported in a line of its own, not in its place.
    """
    try:
        run.finish(status)
    except InfrastructureError as e:
        if status == "complete":
            raise
        progress.message(str(e))
    if status != "complete" and not run.options.verify_only:
        progress.message(
            f"run {status}: {run.saved_trials} trial(s) kept in {run.dir / runmodel.RUN_FILE}"
        )


def _start_baseline(
    base: baseline.Baseline,
    run: Run,
    endpoints: services.Endpoints,
    data_profile: str,
    names: list[str],
    datasets: dict[str, seeding.PairDataset],
    progress: Progress,
    service_env: dict[str, str] | None = None,
) -> tuple[
    server.TargetServer,
    dict[str, seeding.PairDataset],
    tuple[set[str], str, str, procs.Interpreter],
]:
    """Seed for the baseline and start its server beside the new one's; also what its job
    worker would need (its pairs that declare one, DSN, Redis URL, interpreter).

    Same PostgreSQL and Redis. The database is shared when the baseline's dataset identities
    equal the new side's (the same data, the same physical tables); otherwise, or when that
    version cannot say (`seed --plan` is newer than it), or a gated pair's jobs run in a job
    worker, it gets a database of its own on the same server. Redis: the baseline uses logical
    database 1, so cached keys never mix.
    """
    interpreter = base.interpreter
    described = catalogue.describe(interpreter=interpreter)
    seedable = seeding.seedable(described, names)
    planned = seeding.plan(data_profile, seedable, run.options.data_seed, interpreter)
    same = planned is not None and all(
        name in datasets and planned.get(name) == datasets[name].identity for name in seedable
    )
    # A pair whose jobs a worker runs audits its table against the jobs its side accepted, across
    # trials: the other side's rows and deletions would break that count (a worker's pair).
    needs = set(described.worker_pairs(names))
    dsn, where = endpoints.pg_dsn, "shared with the new side"
    if not same or needs:
        dsn = postgres.database_beside(endpoints.pg_dsn, "baseline")
        where = f"its own database on the same server ({postgres.database_name(dsn)})"
    base_datasets = seeding.seed(dsn, data_profile, seedable, run.options.data_seed, interpreter)
    for name, seeded in base_datasets.items():
        progress.message("baseline " + _seed_line(name, seeded))
    redis_url = services.redis_database(endpoints.redis_url, 1)
    # slowdown={}: an exported PAIRBENCH_SLOWDOWN slows the new side only, never the baseline.
    target = server.start(
        dsn,
        redis_url,
        run.logs / f"{run.run_id}-baseline-server.log",
        # The same downstream service as the new side's (docs/architecture.md, "The
        # downstream service"): its counts are read per trial, and trials run one at a time.
        extra_env=service_env,
        interpreter=interpreter,
        slowdown={},
        pairs=names,  # a version that predates the setting ignores it and serves them all
    )
    run.doc["baseline"] = {
        **base.record(),
        "server": target.describe(),
        "dataset": where,
        "pairs": {},
    }
    run.save()
    progress.message(f"baseline server {target.url}: {base.ref}; dataset {where}")
    return target, base_datasets, (needs, dsn, redis_url, interpreter)


def replay_dataset(stored: dict[str, Any]) -> tuple[int | None, dict[str, dict[str, int]]]:
    """From a stored run.json: the data seed and each pair's sizes, for `run --from`.

    They go into RunOptions(data_seed=..., expected_sizes=...): the replay seeds with the same
    seed and refuses (a usage error naming pair and sizes) when a pair's sizes changed since.
    A run from before per-pair datasets has only `metadata.dataset`: its seed, no sizes.
    """
    seeds: list[int] = []
    sizes: dict[str, dict[str, int]] = {}
    for name, record in (stored.get("pairs") or {}).items():
        dataset = record.get("dataset")
        if isinstance(dataset, dict):
            sizes[name] = {str(k): int(v) for k, v in (dataset.get("sizes") or {}).items()}
            seed = (dataset.get("identity") or {}).get("seed")
            if seed is not None:
                seeds.append(int(seed))
    legacy = (stored.get("metadata") or {}).get("dataset") or {}
    if not seeds and legacy.get("seed") is not None:
        seeds.append(int(legacy["seed"]))
    return (seeds[0] if seeds else None), sizes


def _expectation(pair: PairInfo, load: scenario.LoadProfile) -> dict[str, Any] | None:
    e = pair.scenario.expectation
    if e is None:
        return None
    return {
        "metric": e.metric,
        "subject": e.subject,
        "knob": e.at,
        "min_ratio": load.min_ratio or e.min_ratio,
    }


def _services_line(endpoints: services.Endpoints) -> str:
    started = (
        f" (started in {endpoints.startup_seconds:.2f} s)" if endpoints.startup_seconds else ""
    )
    return f"postgres: {endpoints.pg_source}, redis: {endpoints.redis_source}{started}"


T = TypeVar("T")


@contextlib.contextmanager
def _entered(
    pins: pinning.Pins, role: str, manager: contextlib.AbstractContextManager[T]
) -> Iterator[T]:
    """`manager` entered (its processes spawned) on `role`'s CPUs, then held unpinned."""
    with contextlib.ExitStack() as stack:
        with pins.role(role):
            value = stack.enter_context(manager)
        yield value


def now_seed() -> int:
    """A fresh seed for the round shuffles when the user gives none (recorded in run.json)."""
    return int(time.time_ns() % 2**31)
