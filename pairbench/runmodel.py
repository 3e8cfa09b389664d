"""run.json as one typed model, read by results and written by the harness (docs/architecture.md,
The run format; every key is documented in docs/run-format.md).

`SCHEMA_VERSION` is defined here once. Strict types (an int is not a string, a bool is not a
number); unknown extra keys are allowed, so a newer writer can add information without breaking
an older reader of the same version, and docs/run-format.md plus `key_paths` keep every key the
writer adds documented. Readers keep using the plain dict: these models say whether it is well
formed.

A core module: it imports nothing of harness, results, targets or cli (docs/architecture.md,
Layers).

- reader: `load(path)` (read, parse, validate; raises `RunFormatError`) or `validate(doc)`;
- writer: `dump(doc)` validates and returns the JSON text to write atomically;
- tests: `key_paths(doc)`, every key path of a document, map keys replaced by `*`, and
  `undocumented_paths(doc, markdown)` against docs/run-format.md's list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from hdrh.histogram import HdrHistogram
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

# 2 added per pair `counters`, `lesson`, `reference`, `equivalence`, `dataset` and per trial
# `ttfb_histogram`; all optional, so a version 1 document is a valid version 2 one once its
# version number is read.
SCHEMA_VERSION = 2
READABLE_VERSIONS: tuple[int, ...] = (1, 2)
RUN_FILE = "run.json"
JSON_INDENT = 2

MAX_KNOB = "max"  # `expectation.knob` may name the largest knob value instead of a number


def knob_key(value: float) -> str:
    """The JSON object key of a knob value: `10` and `10.0` both give "10", 0.5 gives "0.5"."""
    number = float(value)
    if number.is_integer():
        return str(int(number))
    return repr(number)


# Metric name -> percentile; the names `expectation.metric` and the ratios use.
PERCENTILE_METRICS: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
MEAN_METRIC = "mean"
# The share of a round's requests that failed (errors / requests), lower is better like a
# latency: for a pair whose lesson is failures rather than time (a drained pool serves nothing,
# so it has no latency to compare).
ERROR_RATIO_METRIC = "error_ratio"
# Client-side time to first byte (a scenario's `ttfb = true`): a percentile of the trials'
# `ttfb_histogram`s instead of their full latency, for a lesson that is when the reply starts
# (a streamed export) rather than when it ends.
TTFB_PREFIX = "ttfb_"
TTFB_METRICS: tuple[str, ...] = tuple(f"{TTFB_PREFIX}{m}" for m in ("p50", "p90", "p99"))
METRICS: tuple[str, ...] = (*PERCENTILE_METRICS, MEAN_METRIC, ERROR_RATIO_METRIC, *TTFB_METRICS)

# How much of an offending value to quote in an error line.
QUOTED_INPUT_CHARS = 40


class RunFormatError(ValueError):
    """A run.json that cannot be used; `problem` is one line, `path` the file when known."""

    def __init__(self, problem: str, path: Path | None = None) -> None:
        self.problem = problem
        self.path = path
        super().__init__(f"{path}: {problem}" if path is not None else problem)


# Encodings already decoded once: the writer validates the whole run after every trial, and
# decoding every stored histogram again each time made a run's saves grow with its square.
_DECODED: dict[str, None] = {}
DECODED_KEPT = 4096


def _check_histogram(encoded: str) -> str:
    if encoded in _DECODED:
        return encoded
    try:
        HdrHistogram.decode(encoded)
    except Exception as error:  # hdrh raises binascii, zlib and its own errors
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PydanticCustomError(
            "histogram", "not a valid encoded HdrHistogram ({reason})", {"reason": reason}
        ) from None
    if len(_DECODED) >= DECODED_KEPT:
        del _DECODED[next(iter(_DECODED))]  # the oldest first
    _DECODED[encoded] = None
    return encoded


def _check_knob_or_max(value: Any) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number and value != MAX_KNOB:
        raise PydanticCustomError("knob", 'should be a number or "max"')
    return value


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise PydanticCustomError(
            "metric",
            "unknown metric '{metric}', expected one of {known}",
            {"metric": metric, "known": ", ".join(METRICS)},
        )
    return metric


EncodedHistogram = Annotated[str, AfterValidator(_check_histogram)]


class _Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class Variant(_Record):
    name: str
    label: str
    role: Literal["bad", "middle", "good"]


class Knob(_Record):
    name: str
    label: str
    unit: str
    values: list[float]
    log_scale: bool


class Load(_Record):
    model: str
    users: int
    warmup_seconds: float
    round_seconds: float
    rounds: int | None  # a fixed count; None when adaptive (max_rounds)
    min_rounds: int | None = None
    max_rounds: int | None = None
    precision: float | None = None


class StopRule(_Record):
    min_rounds: int
    max_rounds: int
    precision: float
    decision_confidence: float


class KnobStop(_Record):
    rounds: int
    reason: Literal["precise", "max_rounds", "fixed"]
    widest_half_width: float | None
    open: list[str]


class Stopping(_Record):
    """How many rounds each knob value ran and why it stopped (docs/run-format.md)."""

    rule: StopRule | None  # None: a fixed count of rounds
    knobs: dict[str, KnobStop]


class Expectation(_Record):
    metric: Annotated[str, AfterValidator(_check_metric)]
    knob: Annotated[Any, AfterValidator(_check_knob_or_max)]
    min_ratio: float
    subject: Literal["variant", "bystander"] = "variant"  # whose latency the ratio compares


class Check(_Record):
    name: str
    knob: float | None = None
    variant: str | None = None
    passed: bool
    detail: str
    value: float | None = None  # a counter check's exact growth for one request


class Verification(_Record):
    passed: bool
    checks: list[Check]


class Bystander(_Record):
    """A cheap endpoint loaded alongside the measured variant, recorded apart."""

    requests: int
    errors: int
    clipped: int = 0
    histogram: EncodedHistogram


class OpenLoad(_Record):
    """The open model's book-keeping of one trial: planned, sent, late and dropped requests."""

    target_rate: float
    achieved_rate: float
    due: int
    sent: int
    late: int
    dropped: int


class Counter(_Record):
    """How to read one server counter and how results normalise it (docs/architecture.md,
    What the targets describe)."""

    metric: str
    labels: dict[str, str] = Field(default_factory=dict)
    label: str
    unit: str
    kind: Literal["delta", "peak"]
    # "request": per request; "trial": as is; a list: divided by the sum of those counters.
    per: Literal["request", "trial"] | list[str]
    scale: float = 1.0


class Reference(_Record):
    """The published figure printed beside ours, with where it was published."""

    figure: str
    ratio: float | None = None
    source: str
    url: str | None = None
    knob: float | None = None  # the knob value the published ratio holds at, when known


class Equivalence(_Record):
    rule: str


class PairDataset(_Record):
    """A pair's seeded tables: identity (generator version, DDL, sizes, seed) and the seeding."""

    identity: str | dict[str, Any]
    sizes: dict[str, int]
    seconds: float
    skipped: bool
    rows: dict[str, int]


class Trial(_Record):
    knob: float
    round: int
    position: int
    variant: str
    users: int | None = None  # closed-model users of the variant (absent in older runs)
    started_at: float
    elapsed_s: float
    requests: int
    errors: int
    histogram: EncodedHistogram
    ttfb_histogram: EncodedHistogram | None = None  # client-side time to first byte (v2)
    statuses: dict[str, int] | None = None  # replies per HTTP status, when a step accepts several
    service_histogram: EncodedHistogram | None = None  # open model: from the actual send
    open: OpenLoad | None = None
    generator_cpu_percent: float
    counters: dict[str, float] = Field(default_factory=dict)
    bystander: Bystander | None = None
    stats: Any = None  # the scenario's stats endpoint after the trial, as it answered
    valid: bool
    invalid_reasons: list[str] = Field(default_factory=list)
    load_s: float | None = None  # users loading the target: warm-up and window
    overhead_s: float | None = None  # the rest of the trial's cycle


class PairTiming(_Record):
    """Where a pair's time went: verification, warm-ups, trials under load, the rest."""

    verify_s: float
    warmup_s: float = 0.0
    load_s: float = 0.0
    overhead_s: float = 0.0
    trials: int = 0


class Pair(_Record):
    title: str
    description: str
    variants: list[Variant] = Field(min_length=1)
    bad: str
    knob: Knob
    load: Load
    scenario: dict[str, Any] | None = None
    expectation: Expectation | None = None  # a scenario may declare none
    verification: Verification
    trials: list[Trial]
    capacity: dict[str, Any] | None = None  # `pairbench capacity` instead of rounds
    counters: dict[str, Counter] | None = None  # v2
    lesson: list[str] | None = None  # v2: counter names, headline first
    reference: Reference | None = None  # v2
    equivalence: Equivalence | None = None  # v2
    dataset: PairDataset | None = None  # v2
    timing: PairTiming | None = None
    stopping: Stopping | None = None
    analysis: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _names_agree(self) -> Pair:
        names = {v.name for v in self.variants}
        if self.bad not in names:
            raise PydanticCustomError(
                "bad", "bad variant '{bad}' is not one of the variants", {"bad": self.bad}
            )
        for index, trial in enumerate(self.trials):
            if trial.variant not in names:
                raise PydanticCustomError(
                    "variant",
                    "trials[{index}].variant '{name}' is not one of the variants",
                    {"index": index, "name": trial.variant},
                )
        for name in self.lesson or []:
            if name not in (self.counters or {}):
                raise PydanticCustomError(
                    "lesson", "lesson counter '{name}' is not in counters", {"name": name}
                )
        return self


class Baseline(_Record):
    """An interleaved gate's base side: its version, server and pair records (same shape as
    `pairs`), measured in the same rounds as the new side (docs/run-format.md, baseline)."""

    ref: str
    commit: str | None
    environment: str
    build_seconds: float = 0.0
    server: dict[str, Any]
    dataset: str
    pairs: dict[str, Pair]
    worker: dict[str, Any] | None = None  # its job worker, as metadata.worker


class Run(_Record):
    schema_version: Literal[1, 2]
    run_id: str
    status: Literal["running", "complete", "interrupted", "failed"]
    started_at: str
    finished_at: str | None
    profile: str
    seed: int
    command: list[str]
    metadata: dict[str, Any]
    profile_config: dict[str, Any] | None = None
    reproduces: str | None = None
    rounds: int | None = None  # `run --rounds N`: every pair's fixed count of rounds
    pairs: dict[str, Pair]
    baseline: Baseline | None = None  # an interleaved gate's base side


def validate(doc: Any) -> dict[str, Any]:
    """Return the document when it is a run.json this code can read; else RunFormatError."""
    if not isinstance(doc, dict):
        raise RunFormatError(f"top level is a JSON {type(doc).__name__}, not an object")
    if "schema_version" not in doc:
        raise RunFormatError("missing key schema_version (is this a pairbench run.json?)")
    version = doc["schema_version"]
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        expected = " or ".join(str(v) for v in READABLE_VERSIONS)
        raise RunFormatError(f"schema_version {version!r} is not supported (expected {expected})")
    try:
        Run.model_validate(doc)
    except ValidationError as error:
        raise RunFormatError(_describe(error)) from None
    return doc


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a run (a run folder or its run.json); RunFormatError names the file."""
    file = run_file_path(path)
    try:
        return validate(_parse(_read(file)))
    except RunFormatError as error:
        raise RunFormatError(error.problem, file) from None


def dump(doc: Mapping[str, Any]) -> str:
    """The document as run.json text, after validating it: the writer never stores a run the
    reader would refuse. Strict JSON (NaN and infinity refused)."""
    validate(dict(doc))
    return json.dumps(doc, indent=JSON_INDENT, ensure_ascii=False, allow_nan=False) + "\n"


def run_file_path(path: str | os.PathLike[str]) -> Path:
    """The run.json of a run folder, or the path itself when it names a file."""
    given = Path(path)
    return given / RUN_FILE if given.is_dir() else given


KEY_INDEX_HEADING = "Every key path"  # docs/run-format.md's section listing every key path
# Objects whose keys are data (names, knob values), not part of the format: `key_paths`
# writes their keys as `*`. Paths use `.` between keys and `[]` for a list's items.
MAP_PATHS: frozenset[str] = frozenset(
    {
        "pairs",
        "metadata.packages",
        "metadata.postgres.settings",
        "metadata.dataset.size",
        "metadata.dataset.rows",
        "metadata.server.slowdown",
        "profile_config.dataset",
        "pairs.*.counters",
        "pairs.*.counters.*.labels",
        "pairs.*.dataset.sizes",
        "pairs.*.dataset.rows",
        "pairs.*.trials[].counters",
        "pairs.*.trials[].statuses",
        "pairs.*.capacity.variants",
        "pairs.*.analysis.per_variant",
        "pairs.*.analysis.per_variant.*",
        "pairs.*.analysis.per_variant.*.*.mechanism",
        "pairs.*.analysis.per_variant.*.*.statuses",
        "pairs.*.analysis.ratios",
        "pairs.*.analysis.ratios.*",
        "pairs.*.analysis.trends",
        "pairs.*.stopping.knobs",
    }
)
# Values stored as given by something else, documented as a whole, not key by key: the
# scenario file (harness/scenario.py), a stats endpoint's answer, the capacity spec.
OPAQUE_PATHS: frozenset[str] = frozenset(
    {
        "pairs.*.scenario",
        "pairs.*.trials[].stats",
        "pairs.*.capacity.spec",
        "pairs.*.dataset.identity",
        "metadata.postgres.hba",
        "metadata.server.argv",
        "baseline.server.argv",
    }
)
# Objects whose items have the shape documented under another path: the baseline's pair
# records are pair records (`baseline.pairs.*` is listed; what is inside, under `pairs.*`).
ALIAS_PATHS: dict[str, str] = {"baseline.pairs": "pairs"}


def key_paths(doc: Mapping[str, Any]) -> set[str]:
    """Every key path of a run document, e.g. `pairs.*.trials[].histogram`."""
    return set(_walk(doc, ""))


def documented_paths(markdown: str) -> set[str]:
    """The key paths docs/run-format.md lists in its "Every key path" block, for tests that
    check a run (a fixture, or one just produced) against `key_paths`."""
    section = markdown.split(f"## {KEY_INDEX_HEADING}", 1)
    if len(section) < 2:
        raise ValueError(f"no '## {KEY_INDEX_HEADING}' section")
    block = section[1].split("```text", 1)[1].split("```", 1)[0]
    return {line.strip() for line in block.splitlines() if line.strip()}


def undocumented_paths(doc: Mapping[str, Any], markdown: str) -> list[str]:
    """The key paths of a run document that docs/run-format.md does not list, sorted."""
    return sorted(key_paths(doc) - documented_paths(markdown))


def _walk(value: Any, path: str) -> Iterator[str]:
    if path in OPAQUE_PATHS:
        return
    if isinstance(value, Mapping) and path in ALIAS_PATHS:
        for item in value.values():
            yield f"{path}.*"
            yield from _walk(item, f"{ALIAS_PATHS[path]}.*")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            child = f"{path}.*" if path in MAP_PATHS else f"{path}.{key}" if path else str(key)
            yield child
            yield from _walk(item, child)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, f"{path}[]")


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = "" if file.name == RUN_FILE else f" (expected a run folder or its {RUN_FILE})"
        raise RunFormatError(f"no such file{hint}", file) from None
    except UnicodeDecodeError as error:
        raise RunFormatError(f"not UTF-8 text (byte {error.start})", file) from None
    except OSError as error:
        raise RunFormatError(f"cannot read: {error.strerror or error}", file) from None


def _parse(text: str) -> Any:
    if not text.strip():
        raise RunFormatError("empty file (interrupted before the first write?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        # An error at the very end of the text means the document stopped early; so does a
        # string that never closes (json reports where it started, not where the text ended).
        truncated = error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string")
        what = "not valid JSON (truncated?)" if truncated else f"not valid JSON ({error.msg})"
        raise RunFormatError(f"{what} at line {error.lineno} column {error.colno}") from None


def _describe(error: ValidationError) -> str:
    """The first validation problem as one line, e.g. `pairs.x.trials[3].histogram: ...`."""
    problems = error.errors()
    first = problems[0]
    where = _location(first["loc"])
    if first["type"] == "missing":
        line = f"missing key {where}"
    else:
        prefix = f"{where}: " if where else ""
        line = f"{prefix}{first['msg']}{_quote(first.get('input'))}"
    if len(problems) > 1:
        line += f" (and {len(problems) - 1} more problems)"
    return " ".join(line.split())  # one line, whatever the messages contain


def _quote(value: Any) -> str:
    """` (got 'x')` for a scalar offending value; nothing for whole records."""
    if isinstance(value, dict | list):
        return ""
    quoted = repr(value)
    if len(quoted) > QUOTED_INPUT_CHARS:
        quoted = quoted[: QUOTED_INPUT_CHARS - 3] + "..."
    return f" (got {quoted})"


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
