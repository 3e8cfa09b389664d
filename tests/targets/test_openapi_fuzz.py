"""The OpenAPI document describes what the app returns: schemathesis against the real app.

A real uvicorn serves the real app on the session's embedded PostgreSQL and Valkey, seeded with
the test profile's data (tests/conftest.py). Every operation of the document, so every pair
added later too, is fuzzed with every check schemathesis has, a bounded number of examples each
and a fixed seed: zero failures is the contract (docs/architecture.md, "The OpenAPI contract").
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import engine
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from pairbench.harness import server
from pairbench.targets.registry import load_pairs

SEED = 20261128  # a fixed seed: CI sends the same requests every run
EXAMPLES = 12  # per operation in the fuzzing phase; the file stays within its 60 s budget
REQUEST_TIMEOUT_S = 30.0
VALIDATION_STATUS = "422"  # FastAPI's answer to a parameter that fails validation
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

# Parameters whose value is the work a request does, by design: a probe sleeps, stalls the loop,
# allocates or sends what it is asked for, up to its bound (seconds, hundreds of MiB), and a
# pair's knob parameter (found in /pairs, not named here) is its lesson's cost. Sending them at
# full size would spend the budget measuring nothing more, so a valid value above WORK_CAP is
# sent as WORK_CAP. Values beyond the documented bound, or of the wrong type, go as generated.
WORK_CAP = 10
PROBE_WORK = {
    "/probe/sleep": "ms",
    "/probe/stall/arm": "ms",
    "/probe/allocate": "mb",
    "/probe/bytes": "n",
}


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _config(document: dict[str, Any], base_url: str) -> SchemathesisConfig:
    """Every check on every operation (schemathesis' default), with one exception per operation."""
    operations = []
    for path, method, operation in _operations(document):
        if "400" in operation["responses"]:
            # positive_data_acceptance expects a schema-valid request to be accepted. A documented
            # 400 is a request the schema cannot tell is wrong: an opaque token (a cursor) is a
            # bounded string to the schema, and only the handler can decode it. The check stays
            # on for the operation (a 422 for schema-valid data still fails), with 400 accepted.
            operations.append(
                {
                    # By name: include-path with include-method matches either, not both.
                    "include-name": f"{method.upper()} {path}",
                    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400"]}},
                }
            )
    return SchemathesisConfig.from_dict(
        {
            "base-url": base_url,
            "seed": SEED,
            "workers": 1,
            "request-timeout": REQUEST_TIMEOUT_S,
            "checks": {"enabled": True},
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "operations": operations,
        }
    )


def _work_caps(document: dict[str, Any], described: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{path: {parameter: its documented maximum}} for the parameters capped at WORK_CAP."""

    def maximum(path: str, method: str, name: str) -> float | None:
        for parameter in document["paths"][path][method].get("parameters", []):
            if parameter["name"] == name:
                return float(parameter["schema"]["maximum"])
        return None

    caps: dict[str, dict[str, float]] = {}
    work = [(path, "get", name) for path, name in PROBE_WORK.items()]
    for pair in described["pairs"]:
        work += [(v["path"], v["method"].lower(), pair["knob"]["name"]) for v in pair["variants"]]
    for path, method, name in work:
        bound = maximum(path, method, name)
        if bound is not None:
            caps.setdefault(path, {})[name] = bound
    return caps


def _capped(value: Any, bound: float) -> Any:
    """WORK_CAP in place of a valid value above it (number or, as the coverage phase sends, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number) or not WORK_CAP < number <= bound:
        return value
    return str(WORK_CAP) if isinstance(value, str) else WORK_CAP


@dataclass
class Fuzzed:
    """What one schemathesis run sent and found."""

    requests: int = 0
    by_phase: Counter[str] = field(default_factory=Counter)
    checked: Counter[str] = field(default_factory=Counter)  # check name -> responses checked
    operations: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _fuzz(schema: schemathesis.BaseSchema) -> Fuzzed:
    found = Fuzzed()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            found.operations.add(recorder.label)
            found.requests += len(recorder.interactions)
            found.by_phase[event.phase.name.lower()] += len(recorder.interactions)
            for case_id, nodes in recorder.checks.items():
                for node in nodes:
                    found.checked[node.name] += 1
                    if node.failure_info is not None:
                        case = recorder.cases[case_id].value
                        found.failures.append(
                            f"{recorder.label}: {node.name}: {node.failure_info.failure.title}"
                            f" ({case.as_curl_command()})"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            found.errors.append(str(getattr(event, "value", getattr(event, "exception", event))))
        elif isinstance(event, events.EngineFinished):
            assert event.stop_reason == "completed", event.stop_reason
            found.failures += [f.title for f in event.failures]
    return found


@pytest.fixture(scope="module")
def openapi(target: httpx.Client) -> dict[str, Any]:
    document: dict[str, Any] = target.get("/openapi.json").json()
    return document


@pytest.fixture(scope="module")
def fuzzed(
    target_server: server.TargetServer, target: httpx.Client, openapi: dict[str, Any]
) -> Iterator[Fuzzed]:
    caps = _work_caps(openapi, target.get("/pairs").json())

    # A global hook (schemathesis has no narrower one that sees every phase's requests),
    # removed when the run is over.
    def before_call(context: schemathesis.HookContext, case: Any, kwargs: Any) -> None:
        bounds = caps.get(case.path, {}) if case.query else {}
        for name, bound in bounds.items():
            if name in case.query:
                case.query[name] = _capped(case.query[name], bound)

    GLOBAL_HOOK_DISPATCHER.register_hook_with_name(before_call, "before_call")
    try:
        schema = schemathesis.openapi.from_dict(openapi, config=_config(openapi, target_server.url))
        found = _fuzz(schema)
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)
    print(
        f"\nschemathesis: {found.requests} requests ({dict(found.by_phase)}),"
        f" {len(found.operations)} operations, {len(found.failures)} failures"
    )
    yield found


def test_schemathesis_finds_no_failure_of_any_check(
    fuzzed: Fuzzed, openapi: dict[str, Any]
) -> None:
    assert fuzzed.errors == []
    assert fuzzed.failures == []
    every = {f"{method.upper()} {path}" for path, method, _ in _operations(openapi)}
    assert fuzzed.operations == every
    # Every check ran: one that never ran would pass vacuously.
    load_all_checks()
    assert set(fuzzed.checked) == set(CHECKS.get_all_names())
    assert fuzzed.by_phase["coverage"] and fuzzed.by_phase["fuzzing"]


def test_work_parameters_are_capped_only_within_their_bound() -> None:
    assert _capped(5000, 10_000) == WORK_CAP
    assert _capped("10000", 10_000) == str(WORK_CAP)
    assert _capped("10001", 10_000) == "10001"  # a negative case stays negative
    assert _capped(3, 10_000) == 3
    assert _capped("AAA", 10_000) == "AAA"
    assert _capped(True, 10_000) is True


# The document itself: what the issue found missing stays declared.


def _declared() -> Iterator[tuple[str, str, Mapping[int, str], Any]]:
    """(path, method, error responses, 200 body) of every pair's variants and routes."""
    for pair in load_pairs().values():
        for v in pair.variants.values():
            # A variant that is not JSON (JSON lines) is documented without the JSON body.
            body = pair.body if v.media_type is None else None
            yield pair.path(v.name), v.method.lower(), v.responses, body
        for r in pair.routes.values():
            for method in r.methods:
                yield pair.path(r.subpath), method.lower(), r.responses, r.body


def test_every_declared_error_is_documented_with_its_body(openapi: dict[str, Any]) -> None:
    documented = 0
    for path, method, errors, _ in _declared():
        for status in errors:
            response = openapi["paths"][path][method]["responses"][str(status)]
            schema = response["content"]["application/json"]["schema"]
            if status < 300:  # another success (a 202): documented with the 200's body
                success = openapi["paths"][path][method]["responses"]["200"]
                assert schema == success["content"]["application/json"]["schema"], (path, status)
                continue
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
            documented += 1
    assert documented, "no pair declares an error response: the mechanism is untested"
    error_body = openapi["components"]["schemas"]["ErrorBody"]
    assert error_body["required"] == ["detail"] and error_body["additionalProperties"] is False


def test_every_declared_body_is_the_200_schema_exactly(openapi: dict[str, Any]) -> None:
    documented = 0
    for path, method, _, body in _declared():
        if body is None:
            continue
        schema = openapi["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        # Only references to the declared model, none of FastAPI's looser inferred siblings.
        refs = json.dumps(schema["schema"])
        assert '"additionalProperties": true' not in refs, (path, refs)
        assert "#/components/schemas/" in refs, (path, refs)
        documented += 1
    assert documented, "no pair declares a body: the mechanism is untested"


def test_every_operation_with_parameters_documents_their_validation(
    openapi: dict[str, Any],
) -> None:
    for path, method, operation in _operations(openapi):
        if operation.get("parameters"):
            assert VALIDATION_STATUS in operation["responses"], (method, path)


def test_metrics_documents_the_prometheus_text_it_serves(
    openapi: dict[str, Any], target: httpx.Client
) -> None:
    content = openapi["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == [PROMETHEUS_TEXT]
    assert target.get("/metrics").headers["content-type"] == PROMETHEUS_TEXT


def test_raw_bytes_are_documented_as_such(openapi: dict[str, Any], target: httpx.Client) -> None:
    content = openapi["paths"]["/probe/bytes"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["application/octet-stream"]
    response = target.get("/probe/bytes", params={"n": 3})
    assert response.headers["content-type"] == "application/octet-stream"
