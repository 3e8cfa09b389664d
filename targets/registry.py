"""The one registry of pairs that the app's routes, `describe`, seeding and tests read.

A pair module creates a module-level `pair = Pair(...)`, decorates each variant's handler with
`@pair.variant(role)` (bad first, then middle, then good: the order is the report's order, worst
to best) and is found by `load_pairs()`: adding a pair is adding one module and one scenario
file. The pair owns everything that is its own (docs/architecture.md, "The pair contract"): its
tables and sizes per profile (`@pair.table`), helper routes of any method (`@pair.route`),
lifespan resources (`@pair.lifespan`), what its handlers return for the OpenAPI document
(`body=`, `responses=`), its counters (`pair.counter`), what it needs of the
servers (`ServerNeeds`; with `worker=True`, its jobs in `@pair.worker`), its equivalence
rule, reset and state for pairs that write
(`@pair.reset`, `@pair.state`), the published figure it is compared with (`Reference`) and
its micro benchmark (`@pair.micro`, `@pair.micro_setup`: docs/architecture.md, "The micro
suite") and its workshop exercise (`pair.exercise`: docs/architecture.md, "Exercises").

Modules are loaded from the built-in package first, then from the folders named by
PAIRBENCH_PAIRS (os.pathsep-separated): a user's own pairs need no edit of this package.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import pkgutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, get_args

from .counters import GENERIC, PER_REQUEST, CounterSpec, Per
from .data import PROFILES, DatasetError, Rows, Sizes, Table

if TYPE_CHECKING:
    import asyncpg
    import redis.asyncio as aioredis

    from .metrics import Metrics

Role = Literal["bad", "middle", "good"]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Equivalence = Literal["json", "bytes", "decoded", "jsonlines", "not_modified", "side_effect"]
Handler = Callable[..., Any]
# The error statuses a handler returns, each with when: {404: "no author with that id"}. The app
# documents each with the error body (targets/openapi.py); 422 is FastAPI's own, always there.
Responses = Mapping[int, str]
Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]  # called with the FastAPI app

ROLE_ORDER: dict[str, int] = {"bad": 0, "middle": 1, "good": 2}
PAIRS_ENV = "PAIRBENCH_PAIRS"
# PAIR=FILE: serve FILE's participant function as PAIR's extra variant (targets/exercise.py).
EXERCISE_ENV = "PAIRBENCH_EXERCISE"
# PostgreSQL's own default: enough for the app's pool, a pair's own pool and the harness.
DEFAULT_MAX_CONNECTIONS = 100
VALIDATION_STATUS = 422  # FastAPI's answer to a parameter that fails validation
INTERNAL_PREFIX = "/_pairbench"  # reset, state and plans live here, apart from the pairs' paths
# The Redis logical database micro cores use: the app's is 0, the gate's baseline 1.
MICRO_REDIS_DATABASE = 2


class PairError(ValueError):
    """A pair module breaks the contract; the message names the pair."""


@dataclass(frozen=True)
class MicroServers:
    """What a micro core runs on: the servers reached directly, as a handler reaches them."""

    dsn: str
    pool: asyncpg.Pool  # like the app's: DEFAULT_POOL_SIZE connections, opened at once
    redis: aioredis.Redis  # on MICRO_REDIS_DATABASE, emptied when opened
    metrics: Metrics  # counters for handlers that count (their values are not read)
    resource: Any = None  # what the pair's `@pair.micro_setup` yielded

    @classmethod
    @asynccontextmanager
    async def open(
        cls, dsn: str, redis_url: str, pairs: Mapping[str, Pair] | None = None
    ) -> AsyncIterator[MicroServers]:
        """Connect to the servers for the block; `redis_url`'s database is emptied first."""
        import asyncpg
        import redis.asyncio as aioredis

        from .config import DEFAULT_POOL_SIZE
        from .metrics import Metrics

        pairs = PAIRS if pairs is None else pairs
        metrics = Metrics(declared=[s for p in pairs.values() for s in p.declared.values()])
        pool = await asyncpg.create_pool(
            dsn, min_size=DEFAULT_POOL_SIZE, max_size=DEFAULT_POOL_SIZE
        )
        try:
            redis = aioredis.Redis.from_url(redis_url)
            try:
                await redis.flushdb()  # a value cached from another dataset is never served
                yield cls(dsn, pool, redis, metrics)
            finally:
                await redis.aclose()
        finally:
            await pool.close()


MicroCore = Callable[[MicroServers], Awaitable[Any]]
MicroSetup = Callable[[MicroServers], AbstractAsyncContextManager[Any]]
# A pair's jobs in the worker process: called with the targets' Settings, runs until cancelled.
WorkerMain = Callable[[Any], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Micro:
    """A variant's core work without HTTP, run by the micro suite (benchmarks/micro)."""

    variant: str  # the variant whose core it is
    core: MicroCore
    # The knob value it runs at; None where the knob is a property of the load (concurrent
    # users, key skew), not of one call.
    knob: float | None


@dataclass(frozen=True)
class Shows:
    """A counter the participant's variant must show, and what to tell them when it does not.

    Per request alone (neither bound given): the scenario's `[mechanism.<counter>]` rule for the
    exercise's reference variant, checked by the harness's verification. Under load (`at_least`
    or `at_most`): the counter's figure over the check's trials, in its display units (a hit
    ratio in %, a mean event-loop lag in ms), for what one request cannot show.
    """

    counter: str
    # Why the figure is off, said to the participant after the measured figure ("the loop still
    # queries per author").
    hint: str
    at_least: float | None = None
    at_most: float | None = None

    @property
    def per_request(self) -> bool:
        """Checked on one request alone (the scenario's rule), not under load."""
        return self.at_least is None and self.at_most is None


@dataclass(frozen=True)
class Exercise:
    """A pair's workshop exercise (`pairbench workshop`): fix the bad variant, pass the check.

    The stub the participant fills in has the reference variant's signature and `task` as its
    docstring; the check serves it as an extra good variant, verifies it like any variant (the
    same result by the pair's rule, the mechanism in `shows`), then measures it against the bad
    one at knob value `knob`: the expectation's metric, bad / yours, must reach `min_ratio`.
    """

    reference: str  # the good variant that solves it (the reference solution)
    task: str  # the stub's docstring: what to achieve, which tables
    knob: float
    min_ratio: float
    shows: tuple[Shows, ...] = ()
    # The bad variant the participant starts from and is measured against (None: the pair's
    # first): a pair with several bad variants may teach the one a handler can fix.
    start: str | None = None
    # Where it comes in a workshop (`workshop init`'s README): lower first; the classics first.
    order: int = 100


@dataclass(frozen=True)
class Knob:
    """The parameter that makes the gap between variants grow."""

    name: str
    label: str
    unit: str
    log_scale: bool = True


@dataclass(frozen=True)
class Variant:
    """One implementation; its docstring's first line is its label in reports."""

    name: str
    role: Role
    handler: Handler
    method: Method = "GET"
    responses: Responses = field(default_factory=dict)
    # The 200's media type when it is not JSON (a stream of JSON lines): documented as it is,
    # without the pair's JSON body schema, which does not describe it.
    media_type: str | None = None

    @property
    def label(self) -> str:
        """The first line of the handler's docstring."""
        return (self.handler.__doc__ or self.name).strip().splitlines()[0]


@dataclass(frozen=True)
class Route:
    """A helper endpoint of a pair that is not a variant (never benchmarked)."""

    subpath: str
    handler: Handler
    methods: tuple[Method, ...] = ("GET",)
    responses: Responses = field(default_factory=dict)
    body: Any = None  # the 200's JSON body, for the OpenAPI document (targets/openapi.py)


@dataclass(frozen=True)
class ServerNeeds:
    """What the pair needs of the servers the harness starts."""

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # Its handlers call the downstream service, which the harness then starts for the run
    # (docs/architecture.md, "The downstream service"; targets/downstream.py).
    downstream: bool = False
    # Its jobs run in the harness's worker process, which the runner then starts for the run
    # (docs/architecture.md, "The job worker"; targets/worker.py): the pair registers what the
    # process runs with `@pair.worker`.
    worker: bool = False
    # Served by the harness's process group for its turn, N uvicorn processes of this app on one
    # shared socket (docs/architecture.md, "The process group"): the variants named here go to
    # one member's private port alone, the others to the shared port. Empty: the run's server.
    one_process: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reference:
    """A published figure for the same lesson, printed beside ours in the report."""

    figure: str
    source: str
    ratio: float | None = None  # bad / good, when the source gives one
    url: str | None = None  # only a URL known to be right; none is better than a guess
    # The knob value the published ratio holds at (a page depth, a page size), when the source
    # says: ours is compared with it only at the same value.
    knob: float | None = None


@dataclass
class Pair:
    """An anti-pattern and its fixes, served at /{name}/{variant}."""

    name: str
    title: str
    summary: str
    knob: Knob
    sizes: Mapping[str, Mapping[str, int]] | None = None  # profile -> size key -> value
    counters: Sequence[str] = ("queries",)  # the lesson's counters, headline first
    server: ServerNeeds = field(default_factory=ServerNeeds)
    equivalence: Equivalence = "json"
    reference: Reference | None = None
    # The 200 body every variant returns (the same for all: the equivalence rule compares them),
    # a targets.openapi.Body model or a type of them; documented, never validated at run time.
    body: Any = None
    dataset_version: int = 1  # bump when a row generator changes (DDL is fingerprinted)
    variants: dict[str, Variant] = field(default_factory=dict)
    lifespans: list[Lifespan] = field(default_factory=list)
    routes: dict[str, Route] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)  # creation order
    declared: dict[str, CounterSpec] = field(default_factory=dict)  # counters of its own
    reset_handler: Handler | None = None
    state_handler: Handler | None = None
    micros: dict[str, Micro] = field(default_factory=dict)  # variant name -> its micro core
    micro_setup_factory: MicroSetup | None = None
    # What the job worker process runs for this pair (`@pair.worker`, with ServerNeeds(worker=True)).
    worker_main: WorkerMain | None = None
    workshop: Exercise | None = None  # its exercise (`pair.exercise`)
    # Why it has none (`pair.no_exercise`): a lesson a handler cannot fix, such as a schema's.
    no_workshop: str | None = None
    no_micro_reason: str | None = None  # why the pair has no micro cores (`no_micro`)

    def __post_init__(self) -> None:
        if self.equivalence not in get_args(Equivalence):
            raise PairError(f"pair {self.name!r}: unknown equivalence {self.equivalence!r}")

    # -- decorators a pair module uses --------------------------------------------------

    def variant(
        self,
        role: Role,
        method: Method = "GET",
        *,
        responses: Responses | None = None,
        media_type: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated handler as a variant named after the function.

        `responses`: the statuses it returns besides 200 and 422, e.g. {404: "no such id"}, or
        another success such as {202: "accepted"} (documented with the 200's body).
        `media_type`: its 200's media type, when not JSON (e.g. "application/x-ndjson").
        """
        if role not in ROLE_ORDER:
            raise PairError(f"pair {self.name!r}: unknown role {role!r}")

        def register(handler: Handler) -> Handler:
            name = handler.__name__
            if name in self.variants or name in self.routes:
                raise PairError(f"pair {self.name!r}: {name!r} registered twice")
            self.variants[name] = Variant(
                name, role, handler, method, dict(responses or {}), media_type
            )
            return handler

        return register

    def route(
        self,
        subpath: str,
        methods: Sequence[Method] = ("GET",),
        *,
        responses: Responses | None = None,
        body: Any = None,
    ) -> Callable[[Handler], Handler]:
        """Register a helper endpoint at /{pair}/{subpath}, not a variant (`responses`: as
        `variant`; `body`: its 200 body, as `Pair.body`)."""

        def register(handler: Handler) -> Handler:
            if subpath in self.routes or subpath in self.variants:
                raise PairError(f"pair {self.name!r}: {subpath!r} registered twice")
            self.routes[subpath] = Route(
                subpath, handler, tuple(methods), dict(responses or {}), body
            )
            return handler

        return register

    def lifespan(self, factory: Lifespan) -> Lifespan:
        """Register an async context manager entered in the app's lifespan (resources)."""
        self.lifespans.append(factory)
        return factory

    def table(self, name: str, ddl: str, indexes: str = "") -> Callable[[Rows], Rows]:
        """Register the decorated row generator as one of the pair's tables (created in order)."""

        def register(rows: Rows) -> Rows:
            if any(t.name == name for t in self.tables):
                raise PairError(f"pair {self.name!r}: table {name!r} registered twice")
            self.tables.append(Table(name, ddl, rows, indexes))
            return rows

        return register

    def counter(
        self,
        name: str,
        help: str,
        *,
        label: str,
        unit: str,
        per: Per = PER_REQUEST,
        scale: float = 1,
        read: str | None = None,
    ) -> CounterSpec:
        """Declare a counter of the pair's own; handlers increment it with `metrics.inc(spec)`.

        `read`: instead, a statement returning the counter's value, run at every scrape of
        /metrics (what only the server knows, such as plans from pg_stat_statements).
        """
        if name in GENERIC or name in self.declared:
            raise PairError(f"pair {self.name!r}: counter {name!r} already exists")
        spec = CounterSpec(
            name,
            f"pairbench_{name}_total",
            label,
            unit,
            per=per,
            scale=scale,
            help=help,
            read=read,
        )
        self.declared[name] = spec
        return spec

    def reset(self, handler: Handler) -> Handler:
        """Register how the pair's tables return to their seeded state (POST, between trials)."""
        self.reset_handler = handler
        return handler

    def state(self, handler: Handler) -> Handler:
        """Register how the pair's written state is read back (GET, for `side_effect`)."""
        self.state_handler = handler
        return handler

    def worker(self, main: WorkerMain) -> WorkerMain:
        """Register `async def main(settings)`: the pair's jobs, run in the job worker process
        until cancelled (the pair declares ServerNeeds(worker=True))."""
        self.worker_main = main
        return main

    def micro(self, variant: str, *, knob: float | None) -> Callable[[MicroCore], MicroCore]:
        """Register the decorated `async def core(on: MicroServers)` as `variant`'s micro core.

        It does the variant's work once on `on` and returns what the variant would (the suite
        checks that every core of a pair returns the same); `knob`: the value it runs at.
        """

        def register(core: MicroCore) -> MicroCore:
            if variant in self.micros:
                raise PairError(f"pair {self.name!r}: micro core for {variant!r} registered twice")
            self.micros[variant] = Micro(variant, core, knob)
            return core

        return register

    def micro_setup(self, factory: MicroSetup) -> MicroSetup:
        """Register what the micro cores share: an async context manager taking the servers,
        entered once around them; what it yields is `MicroServers.resource`."""
        self.micro_setup_factory = factory
        return factory

    def exercise(
        self,
        *,
        reference: str,
        task: str,
        knob: float,
        min_ratio: float,
        shows: Sequence[Shows] = (),
        start: str | None = None,
        order: int = 100,
    ) -> Exercise:
        """Declare the pair's workshop exercise (see `Exercise`); checked with the pair."""
        if self.workshop is not None or self.no_workshop is not None:
            raise PairError(f"pair {self.name!r}: exercise declared twice, or after no_exercise")
        self.workshop = Exercise(
            # One paragraph: the stub re-wraps it, so a module's indentation must not stay.
            reference,
            " ".join(task.split()),
            knob,
            min_ratio,
            tuple(shows),
            start,
            order,
        )
        return self.workshop

    def no_exercise(self, reason: str) -> None:
        """Declare that the pair has no workshop exercise, and why (`workshop init` says so)."""
        if self.workshop is not None or not reason.strip():
            raise PairError(f"pair {self.name!r}: no_exercise needs a reason and no exercise")
        self.no_workshop = " ".join(reason.split())

    def no_micro(self, reason: str) -> None:
        """Declare that the pair has no micro cores, and why: the micro contract compares the
        cores' answers, and some fixes answer differently by design (a 429, a 202 before the
        work) or are no in-process core at all (a process start)."""
        if self.micros or not reason.strip():
            raise PairError(f"pair {self.name!r}: no_micro needs a reason and no micro cores")
        self.no_micro_reason = " ".join(reason.split())

    @property
    def exercise_start(self) -> Variant:
        """The bad variant the exercise starts from (the first bad one unless it names one)."""
        if self.workshop is None or self.workshop.start is None:
            return self.bad
        return self.variants[self.workshop.start]

    @asynccontextmanager
    async def micro_servers(self, servers: MicroServers) -> AsyncIterator[MicroServers]:
        """`servers` with the pair's micro setup entered for the block (its resource attached)."""
        if self.micro_setup_factory is None:
            yield servers
            return
        async with self.micro_setup_factory(servers) as resource:
            yield replace(servers, resource=resource)

    # -- what the app, seeding and describe read -----------------------------------------

    @property
    def bad(self) -> Variant:
        """The first bad variant."""
        return next(v for v in self.variants.values() if v.role == "bad")

    def path(self, variant: str) -> str:
        """Where a variant (or a helper route) is served."""
        return f"/{self.name}/{variant}"

    @property
    def reset_path(self) -> str | None:
        """Where the harness POSTs to reset the pair's tables (None: the pair does not write)."""
        return None if self.reset_handler is None else f"{INTERNAL_PREFIX}/reset/{self.name}"

    @property
    def state_path(self) -> str | None:
        """Where the harness GETs the pair's written state (None: the pair does not write)."""
        return None if self.state_handler is None else f"{INTERNAL_PREFIX}/state/{self.name}"

    def profile_sizes(self, profile: str) -> Sizes:
        """The sizes for `profile`; an unknown profile is an error naming the pair."""
        if profile not in PROFILES:
            raise DatasetError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
        return Sizes(self.name, profile, (self.sizes or {})[profile])

    def check(self, catalogue: Mapping[str, CounterSpec]) -> None:
        """Fail at load time, naming the pair, on anything the contract forbids."""
        if not self.variants or not any(v.role == "bad" for v in self.variants.values()):
            raise PairError(f"pair {self.name!r}: needs a bad variant")
        if not any(v.role == "good" for v in self.variants.values()):
            raise PairError(f"pair {self.name!r}: needs a good variant")
        if self.server.worker != (self.worker_main is not None):
            raise PairError(
                f"pair {self.name!r}: ServerNeeds(worker=True) and @pair.worker go together"
            )
        roles = [ROLE_ORDER[v.role] for v in self.variants.values()]
        if roles != sorted(roles):
            raise PairError(f"pair {self.name!r}: variants must be bad first, then middle, good")
        if self.tables or self.sizes is not None:
            sizes = self.sizes or {}
            for profile in PROFILES:
                if profile not in sizes:
                    raise DatasetError(f"pair {self.name!r}: no sizes for profile {profile!r}")
            if extra := set(sizes) - set(PROFILES):
                raise DatasetError(f"pair {self.name!r}: unknown profile(s) {sorted(extra)}")
            keys = {profile: set(sizes[profile]) for profile in PROFILES}
            for profile in PROFILES:
                if keys[profile] != keys[PROFILES[0]]:
                    missing = sorted(keys[PROFILES[0]] ^ keys[profile])
                    raise DatasetError(
                        f"pair {self.name!r}, profile {profile!r}: sizes differ from"
                        f" {PROFILES[0]!r} in {missing}"
                    )
        declared = [(v.name, v.responses) for v in self.variants.values()]
        declared += [(r.subpath, r.responses) for r in self.routes.values()]
        for where, responses in declared:
            for status in responses:
                # 422 is FastAPI's (every parameter's validation); a 5xx is a bug, not a
                # contract; another success (a 202 Accepted) is the 200's body.
                accepted = 200 < status < 300 or 400 <= status < 500
                if not accepted or status == VALIDATION_STATUS:
                    raise PairError(
                        f"pair {self.name!r}, {where!r}: responses may declare 2xx statuses other"
                        f" than 200 and 4xx other than {VALIDATION_STATUS}, not {status}"
                    )
        for name in self.counters:
            if name not in catalogue:
                raise PairError(f"pair {self.name!r}: unknown counter {name!r}")
        if self.equivalence == "side_effect" and (
            self.state_handler is None or self.reset_handler is None
        ):
            # The harness compares the state after each variant's write, from the same start.
            raise PairError(
                f"pair {self.name!r}: equivalence side_effect needs @pair.state and @pair.reset"
            )
        self._check_micro()
        self._check_exercise(catalogue)

    def _check_exercise(self, catalogue: Mapping[str, CounterSpec]) -> None:
        """The exercise names a good variant, says what to do, and has a threshold above 1."""
        exercise = self.workshop
        if exercise is None:
            return
        where = f"pair {self.name!r}, exercise"
        reference = self.variants.get(exercise.reference)
        if reference is None or reference.role != "good":
            raise PairError(f"{where}: reference {exercise.reference!r} is not a good variant")
        if exercise.start is not None:
            start = self.variants.get(exercise.start)
            if start is None or start.role != "bad":
                raise PairError(f"{where}: start {exercise.start!r} is not a bad variant")
        if not exercise.task:
            raise PairError(f"{where}: the task (the stub's docstring) is empty")
        if not exercise.min_ratio > 1:
            raise PairError(f"{where}: min_ratio {exercise.min_ratio:g} must be above 1")
        if exercise.knob < 0:
            raise PairError(f"{where}: knob {exercise.knob:g} is negative")
        for shows in exercise.shows:
            if shows.counter not in catalogue:
                raise PairError(f"{where}: unknown counter {shows.counter!r}")
            if shows.at_least is not None and shows.at_most is not None:
                raise PairError(f"{where}: {shows.counter!r} has both at_least and at_most")
            if not shows.hint.strip():
                raise PairError(f"{where}: {shows.counter!r} has no hint")

    def _check_micro(self) -> None:
        """Micro cores belong to variants, include a bad and a good one, and share one knob."""
        if self.micro_setup_factory is not None and not self.micros:
            raise PairError(f"pair {self.name!r}: @pair.micro_setup without any @pair.micro")
        if not self.micros:
            return
        if unknown := [v for v in self.micros if v not in self.variants]:
            raise PairError(f"pair {self.name!r}: micro core for unknown variant(s) {unknown}")
        roles = {self.variants[v].role for v in self.micros}
        if not {"bad", "good"} <= roles:
            raise PairError(f"pair {self.name!r}: micro cores need a bad and a good variant")
        if len({m.knob for m in self.micros.values()}) > 1:
            knobs = {v: m.knob for v, m in self.micros.items()}
            raise PairError(f"pair {self.name!r}: micro cores run at different knob values {knobs}")

    def describe(self) -> dict[str, Any]:
        """The pair's entry in the describe document (exactly the documented keys)."""
        return {
            "name": self.name,
            "title": self.title,
            "summary": self.summary,
            "knob": {
                "name": self.knob.name,
                "label": self.knob.label,
                "unit": self.knob.unit,
                "log_scale": self.knob.log_scale,
            },
            "variants": [
                {
                    "name": v.name,
                    "role": v.role,
                    "label": v.label,
                    "path": self.path(v.name),
                    "method": v.method,
                }
                for v in self.variants.values()
            ],
            "routes": [
                {"path": self.path(r.subpath), "methods": list(r.methods)}
                for r in self.routes.values()
            ],
            "tables": [t.name for t in self.tables],
            "sizes": {p: dict((self.sizes or {}).get(p, {})) for p in PROFILES},
            "counters": list(self.counters),
            "equivalence": {"rule": self.equivalence},
            "reset": self.reset_path,
            "state": self.state_path,
            "server": {
                "postgres": {"max_connections": self.server.max_connections},
                "downstream": self.server.downstream,
                "worker": self.server.worker,
                "one_process": list(self.server.one_process),
            },
            "reference": None
            if self.reference is None
            else {
                "figure": self.reference.figure,
                "ratio": self.reference.ratio,
                "source": self.reference.source,
                "url": self.reference.url,
                "knob": self.reference.knob,
            },
        }


PAIRS: dict[str, Pair] = {}


def catalogue(pairs: Mapping[str, Pair] | None = None) -> dict[str, CounterSpec]:
    """Every counter /metrics exposes: the generic ones and those the pairs declare."""
    specs = dict(GENERIC)
    for pair in (pairs if pairs is not None else PAIRS).values():
        for name, spec in pair.declared.items():
            if name in specs:
                raise PairError(f"pair {pair.name!r}: counter {name!r} is declared twice")
            specs[name] = spec
    return specs


def _check_ownership(pairs: Mapping[str, Pair]) -> None:
    """Each table belongs to one pair: none reads, or reseeds, another's."""
    owners: dict[str, str] = {}
    for pair in pairs.values():
        for table in pair.tables:
            if table.name in owners:
                raise PairError(
                    f"pair {pair.name!r}: table {table.name!r} belongs to {owners[table.name]!r}"
                )
            owners[table.name] = pair.name


def _adopt(module: ModuleType) -> None:
    """Register the module's `pair`, if it defines one: helper modules are not pairs."""
    pair = getattr(module, "pair", None)
    if not isinstance(pair, Pair):
        return
    known = PAIRS.get(pair.name)
    if known is pair:
        return
    if known is not None:
        raise PairError(f"pair {pair.name!r} defined twice (again in {module.__file__})")
    PAIRS[pair.name] = pair


def _load_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise PairError(f"{PAIRS_ENV}: {folder} is not a folder")
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue  # helpers of the folder's pairs, by the same convention as the package
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
        name = f"pairbench_user_pairs.{path.stem}_{digest}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise PairError(f"{PAIRS_ENV}: cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        _adopt(module)


def load_pairs() -> dict[str, Pair]:
    """Import the built-in pair modules, then those in PAIRBENCH_PAIRS; check every pair."""
    from . import pairs as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            _adopt(importlib.import_module(f"{package.__name__}.{info.name}"))
    for folder in filter(None, os.environ.get(PAIRS_ENV, "").split(os.pathsep)):
        _load_folder(Path(folder))
    specs = catalogue(PAIRS)
    for pair in PAIRS.values():
        pair.check(specs)
    _check_ownership(PAIRS)
    if os.environ.get(EXERCISE_ENV):  # a workshop check's target: serve the participant's variant
        from .exercise import serve_solution

        serve_solution(PAIRS, os.environ[EXERCISE_ENV])
    return PAIRS


def version() -> str:
    """The installed pairbench version."""
    try:
        return importlib.metadata.version("pairbench")
    except importlib.metadata.PackageNotFoundError:  # a source tree run without installing
        return "0.0.0"


def document(pairs: Mapping[str, Pair] | None = None) -> dict[str, Any]:
    """The describe document: `python -m pairbench.targets describe` prints it, /pairs serves it."""
    pairs = load_pairs() if pairs is None else pairs
    return {
        "pairbench": version(),
        "counters": {name: spec.describe() for name, spec in catalogue(pairs).items()},
        "pairs": [pair.describe() for pair in pairs.values()],
    }
