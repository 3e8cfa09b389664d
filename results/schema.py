"""The shape of run.json version 1 (docs/run-format.md) as pydantic models, used to validate.

Strict types (an int is not a string, a bool is not a number); unknown extra keys are allowed
so a newer harness can add information without breaking older readers of the same version.
Readers keep using the plain dict: these models only say whether it is well formed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from . import histograms
from .knobs import MAX_KNOB

SCHEMA_VERSION = 1


def _check_histogram(encoded: str) -> str:
    try:
        histograms.decode(encoded)
    except Exception as error:  # hdrh raises binascii, zlib and its own errors
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PydanticCustomError(
            "histogram", "not a valid encoded HdrHistogram ({reason})", {"reason": reason}
        ) from None
    return encoded


def _check_knob_or_max(value: Any) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number and value != MAX_KNOB:
        raise PydanticCustomError("knob", 'should be a number or "max"')
    return value


def _check_metric(metric: str) -> str:
    if metric not in histograms.METRICS:
        raise PydanticCustomError(
            "metric",
            "unknown metric '{metric}', expected one of {known}",
            {"metric": metric, "known": ", ".join(histograms.METRICS)},
        )
    return metric


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
    rounds: int


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


class Verification(_Record):
    passed: bool
    checks: list[Check]


class Bystander(_Record):
    """A cheap endpoint loaded alongside the measured variant, recorded apart."""

    requests: int
    errors: int
    clipped: int = 0
    histogram: Annotated[str, AfterValidator(_check_histogram)]


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
    histogram: Annotated[str, AfterValidator(_check_histogram)]
    generator_cpu_percent: float
    counters: dict[str, float] = Field(default_factory=dict)
    bystander: Bystander | None = None
    valid: bool
    invalid_reasons: list[str] = Field(default_factory=list)


class Pair(_Record):
    title: str
    description: str
    variants: list[Variant] = Field(min_length=1)
    bad: str
    knob: Knob
    load: Load
    expectation: Expectation | None = None  # a scenario may declare none
    verification: Verification
    trials: list[Trial]
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
        return self


class Run(_Record):
    schema_version: Literal[1]
    run_id: str
    status: Literal["running", "complete", "interrupted", "failed"]
    started_at: str
    finished_at: str | None
    profile: str
    seed: int
    command: list[str]
    metadata: dict[str, Any]
    pairs: dict[str, Pair]
