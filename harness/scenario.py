"""Scenario files (TOML) and suite profiles, validated into typed objects.

A malformed file is a usage error naming the file and the field: `scenarios/x.toml:
profiles.quick.users: Input should be greater than 0`. The whole format is in
docs/architecture.md, "Scenarios"; the request, in short:

The request. What each variant sends, as data (method, path, query, headers, JSON body,
expected status). Three spellings, normalised into a `RequestSpec` (a list of `Step`s plus
per-variant overrides):

    request = "/p/{variant}?n={knob}"            # one GET expecting 200
    [request]  lazy = "/a?n={knob}"  join = ...  # a path per variant
    [request]  method = "POST"  path = "/p/{variant}"  query = { n = "{knob}" }
               headers = { ... }  json = { id = "{key}" }  status = 201
    [request.variants.<name>]                    # overrides of that one step
    [[request.steps]] ... carry = { "If-None-Match" = "ETag" }  once = true  measure = false

Strings are templates: `{variant}`, `{knob}`, `{key}` (drawn per request), the fields of
[prepare]. `[mechanism.plan]` (variant = an access path such as "Index Scan") is read into
`Scenario.plan`; `ttfb = true` records time to first byte under load.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pairbench.errors import UsageError
from pairbench.scenarios import SCENARIO_DIR

from .downstream import DEFAULT_CONCURRENCY, OverLimit

PROFILES_FILE = "profiles.toml"
# The most a link carries (harness/link.py MAX_MBIT); as a client_mbit knob value: unlimited.
MAX_CLIENT_MBIT = 100_000
MAX_DOWNSTREAM_CONCURRENCY = 10_000  # harness/downstream_app.py, MAX_CONCURRENCY
Role = Literal["bad", "middle", "good"]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a scenario must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Profile(Strict):
    """A suite profile: its name selects every pair's sizes (declared in the pair modules),
    unless `data` names the profile whose sizes it borrows (the gate profile uses quick's)."""

    description: str = ""
    data: str | None = None

    def data_profile(self, name: str) -> str:
        """The profile whose data sizes a run of profile `name` seeds."""
        return self.data or name

    @model_validator(mode="before")
    @classmethod
    def _legacy_dataset(cls, data: Any) -> Any:
        # Runs stored before sizes moved into the pair modules kept a global `dataset` here;
        # a replay of one must still read its profile (the sizes are checked per pair).
        if isinstance(data, dict) and "dataset" in data:
            return {k: v for k, v in data.items() if k != "dataset"}
        return data


class KnobSpec(Strict):
    name: str
    label: str = ""
    unit: str = ""
    log_scale: bool = True


class LinkSide(Strict):
    """One emulated link (harness/link.py): a bandwidth (None: unlimited) and an added round trip."""

    mbit: float | None = Field(None, gt=0, le=MAX_CLIENT_MBIT)
    rtt_ms: float = Field(0.0, ge=0, le=10_000)


class Link(Strict):
    """Where a scenario puts a link (docs/architecture.md, "The link emulator"): between the load
    generator and the target (`client`), and between the target and PostgreSQL and Redis (`db`)."""

    client: LinkSide | None = None
    db: LinkSide | None = None


class Expectation(Strict):
    # error_ratio: the share of requests that failed, for a lesson that is a cliff, not a time;
    # ttfb_*: the time to first byte (needs `ttfb = true`), for a lesson that is when it starts
    metric: Literal["p50", "p90", "p99", "error_ratio", "ttfb_p50", "ttfb_p90", "ttfb_p99"] = "p50"
    subject: Literal["variant", "bystander"] = "variant"  # whose latency the ratio compares
    at: float | Literal["max"] = "max"
    min_ratio: float = Field(gt=0)


class PerRequest(Strict):
    """How much a server-side counter grows for one request: base + per_knob * knob."""

    base: int = Field(ge=0)
    per_knob: int = Field(0, ge=0)

    def expected(self, knob: float) -> float:
        return self.base + self.per_knob * knob


# [mechanism.<counter>] <variant> = { base = .., per_knob = .. }; counters as in run.json
Mechanism = dict[str, dict[str, PerRequest]]


class LoadProfile(Strict):
    """How one profile loads a pair. Closed: `users` in a loop. Open: `rate` req/s over `users`
    connections, latency from each request's planned send time."""

    knob_values: list[float] = Field(min_length=1)
    model: Literal["closed", "open"] = "closed"
    users: int = Field(ge=1, le=10_000)
    rate: float | None = Field(None, gt=0, le=1_000_000)
    think_ms: float = Field(0.0, ge=0, le=600_000)  # closed model: pause between reply and request
    warmup_seconds: float = Field(0.0, ge=0)
    trial_warmup_seconds: float = Field(0.2, ge=0)
    round_seconds: float = Field(gt=0, le=3600)
    # Rounds per knob value: a fixed count (`rounds`), or adaptive (`max_rounds`): rounds are
    # added until every judged ratio's 95% interval is within +-precision of the ratio and the
    # expectation is decided, between min_rounds and max_rounds (docs/architecture.md,
    # "Adaptive rounds").
    rounds: int | None = Field(None, ge=1, le=1000)
    min_rounds: int = Field(3, ge=2, le=1000)
    max_rounds: int | None = Field(None, ge=2, le=1000)
    precision: float = Field(0.05, gt=0, lt=1)
    max_error_ratio: float = Field(0.01, ge=0, le=1)
    max_generator_cpu_percent: float = Field(90.0, gt=0)
    max_rate_shortfall: float = Field(0.05, ge=0, le=1)  # open model: achieved vs target rate
    # Overrides [expectation] min_ratio for this profile: a deeper or larger dataset shows more.
    min_ratio: float | None = Field(None, gt=0)
    # Replaces the scenario's [link] for this profile ([profiles.<name>.link.db] ...).
    link: Link | None = None

    @model_validator(mode="after")
    def _one_round_count(self) -> LoadProfile:
        if (self.rounds is None) == (self.max_rounds is None):
            raise ValueError(
                "give either rounds (a fixed count) or max_rounds (adaptive, with min_rounds)"
            )
        if self.max_rounds is not None and self.min_rounds > self.max_rounds:
            raise ValueError(f"min_rounds {self.min_rounds} > max_rounds {self.max_rounds}")
        return self

    @property
    def adaptive(self) -> bool:
        """Rounds are added until the stopping rule is met (max_rounds set)."""
        return self.max_rounds is not None

    @property
    def most_rounds(self) -> int:
        """The rounds a knob value can take at most: the fixed count or max_rounds."""
        count = self.max_rounds if self.max_rounds is not None else self.rounds
        assert count is not None  # one of the two, by _one_round_count
        return count

    def fixed(self, rounds: int) -> LoadProfile:
        """This profile with a fixed count of rounds (`run --rounds N`)."""
        return self.model_copy(update={"rounds": rounds, "max_rounds": None})

    @model_validator(mode="after")
    def _sorted_knob(self) -> LoadProfile:
        if list(self.knob_values) != sorted(set(self.knob_values)):
            raise ValueError("knob_values must be increasing and distinct")
        return self


class Prepare(Strict):
    """A request made once per knob value before verifying and measuring.

    Its JSON object's fields become template variables of `request`: the keyset cursor that
    starts at the same row as OFFSET k, for instance.
    """

    request: str


MAX_KEY_COUNT = 10_000_000


class Keys(Strict):
    """Fill `{key}` in the request per request, from a Zipf distribution over keys 1..count.

    `count = "knob"`: the knob's value is the count (the distinct keys requested), so every
    knob value must be a whole number from 1 to MAX_KEY_COUNT.
    """

    count: Annotated[int, Field(ge=1, le=MAX_KEY_COUNT)] | Literal["knob"] = Field(
        description="a number, or the knob's value"
    )
    exponent: float | Literal["knob"] = Field("knob", description="a number, or the knob's value")
    verify: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1)

    def count_at(self, knob: float) -> int:
        """How many keys are drawn from at `knob` (1..count)."""
        return int(knob) if self.count == "knob" else self.count


class Bystander(Strict):
    """A cheap endpoint loaded alongside the variant, measured apart: the collateral damage.

    Each of `users` sends as soon as its reply arrived, or, with `rate`, at a steady pace of
    rate / users requests per second each (a well-behaved client; a slow reply delays its next
    request, which is never sent early to catch up)."""

    request: str
    users: int = Field(1, ge=1, le=1000)
    rate: float | None = Field(None, gt=0, le=100_000)  # requests per second, over all users


class DownstreamTable(Strict):
    """How the harness's downstream service behaves while this scenario's pair runs (docs/
    architecture.md, "The downstream service"): calls served at once, and what happens to the
    rest. Without the table a pair gets the service's defaults (8 at once, the rest queue)."""

    concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=MAX_DOWNSTREAM_CONCURRENCY)
    over_limit: OverLimit = "queue"


class Capacity(Strict):
    """A step ramp of open-model arrival rates per variant, up to the first step that breaks the SLO."""

    knob: float | Literal["max"] = "max"  # at which knob value
    slo_p99_ms: float = Field(gt=0)
    max_error_ratio: float = Field(0.01, ge=0, le=1)
    start_rate: float = Field(gt=0)
    step_factor: float = Field(1.5, gt=1, le=10)
    max_rate: float = Field(gt=0)
    step_seconds: float = Field(2.0, gt=0, le=600)
    warmup_seconds: float = Field(0.3, ge=0)
    connections: int = Field(32, ge=1, le=10_000)
    knee_factor: float = Field(3.0, gt=1)  # the knee: p99 this many times the lightest step's


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
DEFAULT_STATUS = 200
MAX_STATUSES = 8  # a step accepting more than a handful of statuses accepts anything
HttpStatus = Annotated[int, Field(ge=100, le=599, strict=True)]
# One status, or a list of the statuses a step accepts (`status = [200, 429]`: a rate-limited
# client's replies). The first is the one verification expects of its lone request; under load
# every listed status is a success (docs/architecture.md, "The request").
Statuses = HttpStatus | Annotated[list[HttpStatus], Field(min_length=1, max_length=MAX_STATUSES)]


# A path may be a whole URL in a scenario for a service of your own: the same path on two
# deployments (docs/architecture.md, "Your own service").
URL_SCHEMES = ("http://", "https://")


def _check_path(path: str | None) -> None:
    if path is not None and not path.startswith(("/", *URL_SCHEMES)):
        raise ValueError("path must start with / (or be a whole http:// or https:// URL)")


def _distinct(status: int | list[int] | None) -> None:
    if isinstance(status, list) and len(set(status)) != len(status):
        raise ValueError(f"status lists {status} with a repeated status")


JsonValue = Any  # a JSON body template: strings in it are templates


class Step(Strict):
    """One HTTP request of a variant's sequence: method, path, query, headers, body, status.

    Every string is a template ({variant}, {knob}, {key}, the fields of [prepare]). `status` is
    one status or a list of accepted ones, the first being what verification expects. `carry`
    copies a response header of the previous step into a request header of this one
    (`carry = { "If-None-Match" = "ETag" }`); `once` runs the step only on a load user's first
    iteration (its carried headers are kept); `measure = false` leaves the step out of latency.
    """

    method: HttpMethod | None = None  # default: the variant's declared method, else GET
    path: str | None = None  # None only in a one-step request whose variants each give one
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: JsonValue = Field(None, alias="json")
    status: Statuses = DEFAULT_STATUS
    carry: dict[str, str] = Field(default_factory=dict)
    once: bool = False
    measure: bool = True

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _path_is_a_path(self) -> Step:
        _check_path(self.path)
        _distinct(self.status)
        return self

    @property
    def expected_status(self) -> int:
        """The status verification expects: the only one, or the first listed."""
        return self.status[0] if isinstance(self.status, list) else self.status


class VariantRequest(Strict):
    """Per-variant overrides of a one-step request (any field left out is the shared one's)."""

    method: HttpMethod | None = None
    path: str | None = None
    query: dict[str, str | int | float | bool] | None = None
    headers: dict[str, str] | None = None
    json_body: JsonValue = Field(None, alias="json")
    status: Statuses | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _path_is_a_path(self) -> VariantRequest:
        _check_path(self.path)
        _distinct(self.status)
        return self


class RequestSpec(Strict):
    """What a variant sends: one step (the usual case) or a short sequence (`[[request.steps]]`)."""

    steps: list[Step] = Field(min_length=1, max_length=8)
    variants: dict[str, VariantRequest] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _overrides_need_one_step(self) -> RequestSpec:
        if self.variants and len(self.steps) > 1:
            raise ValueError("[request.variants] applies to a one-step request only")
        if not any(s.measure for s in self.steps):
            raise ValueError("at least one step must be measured")
        if self.steps[0].carry:
            raise ValueError("the first step has no previous reply to carry a header from")
        return self

    def strings(self) -> list[str]:
        """Every template string, for placeholder checks."""
        out: list[str] = []
        parts: list[Step | VariantRequest] = [*self.steps, *self.variants.values()]
        for part in parts:
            out += [part.path or ""]
            out += [str(v) for v in (part.query or {}).values()]
            out += list((part.headers or {}).values())
            out += list(_json_strings(part.json_body))
        return out

    def step_for(self, variant: str, index: int) -> Step:
        """Step `index` as `variant` sends it: the shared step with the variant's overrides."""
        step = self.steps[index]
        override = self.variants.get(variant)
        if override is None:
            return step
        changes = {
            k: v
            for k, v in override.model_dump(by_alias=False, exclude_none=True).items()
            if k != "json_body"
        }
        if override.json_body is not None:
            changes["json_body"] = override.json_body
        return step.model_copy(update=changes)


def _json_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _json_strings(v)]
    return []


_STEP_FIELDS = set(Step.model_fields) | {"json"}


def _normalise_request(raw: Any) -> Any:
    """The request's three spellings, as one RequestSpec.

    `request = "/p/{variant}?n={knob}"`: one GET expecting 200. `request = { lazy = "/a",
    join = "/b" }`: a path per variant. `[request]` with step fields (path, method, ...) and
    optional `[request.variants.<name>]`, or `[[request.steps]]`: the full form.
    """
    if isinstance(raw, str):
        return {"steps": [{"path": raw}]}
    if not isinstance(raw, dict):
        return raw
    if "steps" in raw:
        return raw
    if raw and all(isinstance(v, str) for v in raw.values()) and not set(raw) & _STEP_FIELDS:
        return {"steps": [{}], "variants": {k: {"path": v} for k, v in raw.items()}}
    variants = raw.get("variants", {})
    step = {k: v for k, v in raw.items() if k != "variants"}
    return {"steps": [step], "variants": variants}


class Scenario(Strict):
    """One pair's experiment: what to request, how to load it, how to judge it."""

    pair: str
    # The key of its record in run.json when it is not `pair`: a second scenario of the same pair
    # measured another way (scenarios/n_plus_one_rtt.toml sweeps the database's round trip).
    name: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    # What each variant sends: see the module docstring ("The request").
    request: RequestSpec
    # "users": the knob is the concurrency; "rate": the open model's arrival rate;
    # "db_rtt_ms": the round trip (ms) of the link to PostgreSQL and Redis ([link.db]);
    # "client_mbit": the bandwidth (Mbit/s; 100,000: unlimited) of the client link ([link.client])
    knob_sets: Literal["request", "users", "rate", "db_rtt_ms", "client_mbit"] = "request"
    prepare: Prepare | None = None
    keys: Keys | None = None
    bystander: Bystander | None = None
    capacity: Capacity | None = None
    # The downstream service's settings for this pair (only for pairs that call it).
    downstream: DownstreamTable | None = None
    # A JSON endpoint read after every trial and stored with it (e.g. a driver's pool stats).
    stats_request: str | None = None
    title: str | None = None
    variants: dict[str, Role] | None = None  # only for pairs the targets registry lacks
    knob: KnobSpec | None = None  # idem
    labels: dict[str, str] = Field(default_factory=dict)  # variant -> its label in reports; idem
    # A service of your own (docs/architecture.md, "Your own service"): its base URL, and what
    # verification compares besides each step's status ("status": nothing more).
    base_url: str | None = Field(None, pattern=r"^https?://[^/?#\s]+$")
    equivalence: Literal["status", "json", "bytes", "decoded"] | None = None
    expectation: Expectation | None = None
    mechanism: Mechanism = Field(default_factory=dict)
    # variant = a substring of the access paths its statements must show ("Index Scan")
    plan: dict[str, str] = Field(default_factory=dict)
    # Record client-side time to first byte beside full latency (costs generator CPU).
    ttfb: bool = False
    # Emulated links (harness/link.py); a profile's own [profiles.<name>.link] replaces it.
    link: Link | None = None
    profiles: dict[str, LoadProfile]
    source: str = ""  # the file it came from, filled by the loader

    @model_validator(mode="before")
    @classmethod
    def _request_forms(cls, data: Any) -> Any:
        if isinstance(data, dict) and "request" in data:
            data = {**data, "request": _normalise_request(data["request"])}
        if isinstance(data, dict) and isinstance(data.get("mechanism"), dict):
            # [mechanism.plan] is the access-path check, not a counter.
            mechanism = dict(data["mechanism"])
            if "plan" in mechanism:
                data = {**data, "plan": mechanism.pop("plan"), "mechanism": mechanism}
        return data

    @model_validator(mode="after")
    def _request_template(self) -> Scenario:
        spec = self.request
        templates = spec.strings()
        paths = [s.path for s in spec.steps] + [v.path for v in spec.variants.values()]
        if spec.steps[0].path is None and not spec.variants:
            raise ValueError("request needs a path")
        if not spec.variants and not any("{variant}" in (p or "") for p in paths):
            raise ValueError("request must contain {variant} (or be a table: variant = path)")
        if self.knob_sets == "request":
            knob_used = [*templates, self.prepare.request if self.prepare else ""]
            keys_use_knob = self.keys is not None and "knob" in (
                self.keys.exponent,
                self.keys.count,
            )
            if not keys_use_knob and not any("{knob}" in t for t in knob_used):
                raise ValueError('{knob} appears in no request (or set knob_sets = "users")')
        if self.keys is None and any("{key}" in t for t in templates):
            raise ValueError("request uses {key} but there is no [keys] table")
        return self

    @model_validator(mode="after")
    def _key_count_knob(self) -> Scenario:
        if self.keys is None or self.keys.count != "knob":
            return self
        for name, load in self.profiles.items():
            for value in load.knob_values:
                if value != int(value) or not 1 <= value <= MAX_KEY_COUNT:
                    raise ValueError(
                        f'profiles.{name}.knob_values: {value:g}: with keys.count = "knob" a'
                        f" knob value is a key count, a whole number from 1 to {MAX_KEY_COUNT:,}"
                    )
        return self

    @model_validator(mode="after")
    def _bandwidth_knob(self) -> Scenario:
        if self.knob_sets != "client_mbit":
            return self
        for name, load in self.profiles.items():
            for value in load.knob_values:
                if not 0 < value <= MAX_CLIENT_MBIT:
                    raise ValueError(
                        f"profiles.{name}.knob_values: {value:g} Mbit/s: a client_mbit knob value"
                        f" must be above 0 and at most {MAX_CLIENT_MBIT:g} (unlimited)"
                    )
        return self

    @model_validator(mode="after")
    def _open_needs_rate(self) -> Scenario:
        # Here, not in LoadProfile: with knob_sets = "rate" the knob is the arrival rate.
        for name, load in self.profiles.items():
            if load.model == "open" and load.rate is None and self.knob_sets != "rate":
                raise ValueError(
                    f"profiles.{name}: the open model needs rate (requests per second), "
                    'or knob_sets = "rate"'
                )
        return self

    @model_validator(mode="after")
    def _ttfb_recorded(self) -> Scenario:
        metric = self.expectation.metric if self.expectation else ""
        if metric.startswith("ttfb_") and not self.ttfb:
            raise ValueError(f"expectation metric {metric!r} needs ttfb = true")
        return self

    @model_validator(mode="after")
    def _own_service(self) -> Scenario:
        if self.base_url is None:
            if self.equivalence is not None:
                raise ValueError(
                    "equivalence is for a service of your own (with base_url): a pair's rule"
                    " comes from its targets module"
                )
            return self
        if self.variants is None or self.knob is None:
            raise ValueError("a scenario with base_url lists its [variants] and its [knob]")
        unknown = sorted(set(self.labels) - set(self.variants))
        if unknown:
            raise ValueError(f"labels.{unknown[0]}: no such variant in [variants]")
        linked = self.link is not None or any(p.link is not None for p in self.profiles.values())
        if linked or self.knob_sets in ("db_rtt_ms", "client_mbit"):
            raise ValueError("a link needs a target the run starts behind it: not with base_url")
        return self

    @property
    def own_service(self) -> bool:
        """A scenario for a service of your own: no targets module, no seeding."""
        return self.base_url is not None

    @property
    def key(self) -> str:
        """What the run records it as (`name`, else `pair`)."""
        return self.name or self.pair

    def check_variants(self, names: set[str]) -> None:
        """Every variant has a path; overrides name only real variants (one line if not)."""
        for where, table in (("request.variants", self.request.variants), ("plan", self.plan)):
            unknown = sorted(set(table) - names)
            if unknown:
                raise UsageError(f"{self.source}: {where}.{unknown[0]}: no such variant")
        if self.request.steps[0].path is None:
            for name in sorted(names):
                if self.request.step_for(name, 0).path is None:
                    raise UsageError(f"{self.source}: request: no path for variant {name!r}")

    def load(self, profile: str) -> LoadProfile:
        """The load for `profile`, or a usage error naming the file."""
        if profile not in self.profiles:
            known = ", ".join(sorted(self.profiles))
            raise UsageError(f"{self.source}: no [profiles.{profile}] (has: {known})")
        return self.profiles[profile]

    def path(self, variant: str, knob: float, extra: Mapping[str, Any] | None = None) -> str:
        """The first step's path for a variant; `{key}` is kept for the load generator to fill."""
        path = self.request.step_for(variant, 0).path
        if path is None:
            raise UsageError(f"{self.source}: request: no path for variant {variant!r}")
        values = _Template(variant=variant, knob=knob_text(knob))
        values.update({k: quote(str(v), safe="") for k, v in (extra or {}).items()})
        return self.fill(path.format_map(values))

    def fill(self, text: str) -> str:
        """`text` with a usage error for any placeholder left but {key}."""
        leftover = [m for m in _PLACEHOLDER.findall(text) if m != "key"]
        if leftover:
            raise UsageError(f"{self.source}: request placeholder {{{leftover[0]}}} has no value")
        return text

    def link_for(self, load: LoadProfile) -> Link | None:
        """The links a profile runs with: its own, else the scenario's; a knob that sets the
        database link's round trip implies that link (unlimited bandwidth unless declared), and
        one that sets the client link's bandwidth the client link (no added round trip unless
        declared)."""
        chosen = load.link if load.link is not None else self.link
        if self.knob_sets == "db_rtt_ms" and (chosen is None or chosen.db is None):
            chosen = Link(
                client=chosen.client if chosen else None, db=LinkSide(mbit=None, rtt_ms=0.0)
            )
        if self.knob_sets == "client_mbit" and (chosen is None or chosen.client is None):
            chosen = Link(client=LinkSide(mbit=None, rtt_ms=0.0), db=chosen.db if chosen else None)
        return chosen

    def users_at(self, load: LoadProfile, knob: float) -> int:
        """Users (closed) or connections (open): the knob itself when it is the concurrency."""
        return int(knob) if self.knob_sets == "users" else load.users

    def rate_at(self, load: LoadProfile, knob: float) -> float | None:
        """The open model's arrival rate (None in the closed model)."""
        if load.model != "open":
            return None
        return knob if self.knob_sets == "rate" else load.rate


class _Template(dict[str, str]):
    def __missing__(self, name: str) -> str:
        return "{" + name + "}"


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def knob_text(knob: float) -> str:
    """A knob value as it appears in a URL: 10, not 10.0."""
    return str(int(knob)) if float(knob).is_integer() else repr(knob)


def scenario_dirs() -> list[Path]:
    """Built-in scenarios, then PAIRBENCH_SCENARIOS (colon-separated folders) which override."""
    extra = [Path(p) for p in os.environ.get("PAIRBENCH_SCENARIOS", "").split(os.pathsep) if p]
    for folder in extra:
        if not folder.is_dir():
            problem = "is not a folder" if folder.exists() else "does not exist"
            raise UsageError(f"PAIRBENCH_SCENARIOS: {folder} {problem}")
    return [SCENARIO_DIR, *extra]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror})") from e
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: not valid TOML ({e})") from e


def _first_error(path: Path, error: ValidationError) -> UsageError:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = str(first["msg"]).removeprefix("Value error, ")
    return UsageError(f"{path}: {where}: {message}")


def load_scenario(path: Path) -> Scenario:
    """Parse and validate one scenario file."""
    raw = _read_toml(path)
    try:
        return Scenario.model_validate({**raw, "source": str(path)})
    except ValidationError as e:
        raise _first_error(path, e) from e


def available() -> dict[str, Path]:
    """Pair name → scenario file, later folders overriding earlier ones."""
    found: dict[str, Path] = {}
    for folder in scenario_dirs():
        for path in sorted(folder.glob("*.toml")):
            if path.name != PROFILES_FILE:
                found[path.stem] = path
    return found


def select(names: list[str]) -> list[Scenario]:
    """The scenarios for `names` (all when empty); an unknown name is a usage error.

    A name ending in .toml is a scenario file's path (a service of your own's, usually).
    """
    files = available()
    for name in names:
        if name.endswith(".toml"):
            if not Path(name).is_file():
                raise UsageError(f"{name}: no such scenario file")
            files[name] = Path(name)
    unknown = [n for n in names if n not in files]
    if unknown:
        raise UsageError(
            f"unknown pair {unknown[0]!r}; known pairs: {', '.join(sorted(files)) or 'none'}"
        )
    return [load_scenario(files[n]) for n in (names or list(files))]


def load_profiles() -> dict[str, Profile]:
    """Suite profiles from the last profiles.toml found."""
    path = next(
        (d / PROFILES_FILE for d in reversed(scenario_dirs()) if (d / PROFILES_FILE).exists()),
        SCENARIO_DIR / PROFILES_FILE,
    )
    raw = _read_toml(path)
    try:
        return {name: Profile.model_validate(body) for name, body in raw.items()}
    except ValidationError as e:
        raise _first_error(path, e) from e


def profile(name: str) -> Profile:
    """One suite profile, or a usage error listing the known ones."""
    profiles = load_profiles()
    if name not in profiles:
        raise UsageError(f"unknown profile {name!r}; known: {', '.join(profiles)}")
    return profiles[name]
