"""A scenario's requests against what the endpoints accept, before any server starts.

What an endpoint accepts is declared once, in the pair's FastAPI parameters (`Query(ge=, le=,
max_length=)`); the harness reads it from the targets' OpenAPI document
(`python -m pairbench.targets openapi`, catalogue.openapi) and never imports the targets. Every
step of every variant is rendered for every knob value of the profile being run, and each query
and path parameter is checked against its schema: a value the endpoint would refuse is a usage
error naming the file, the profile, the knob value, the parameter and the bound
(docs/architecture.md, "Scenarios"). Values a scenario cannot know yet ([prepare] fields) and
steps that expect a 4xx or 5xx are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pairbench.errors import UsageError

from .catalogue import PairInfo
from .scenario import Scenario, Step, knob_text

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_TRUE_FALSE = {"true", "false", "1", "0", "yes", "no", "on", "off"}


@dataclass(frozen=True)
class Operation:
    """One method of one path in the OpenAPI document, with its parameters by (in, name)."""

    method: str
    template: str
    pattern: re.Pattern[str]
    parameters: dict[tuple[str, str], dict[str, Any]]


def operations(doc: Mapping[str, Any]) -> list[Operation]:
    """Every operation of an OpenAPI document; literal paths before templated ones."""
    found: list[Operation] = []
    for template, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        shared = [p for p in item.get("parameters") or [] if isinstance(p, dict)]
        for method, op in item.items():
            if method == "parameters" or not isinstance(op, dict):
                continue
            params = {
                (str(p.get("in")), str(p.get("name"))): p
                for p in [*shared, *(op.get("parameters") or [])]
                if isinstance(p, dict)
            }
            regex = "".join(
                "(?P<" + _group(part[1:-1]) + ">[^/]+)"
                if part.startswith("{") and part.endswith("}")
                else re.escape(part)
                for part in re.split(r"(\{[^}]+\})", template)
            )
            found.append(Operation(method.upper(), template, re.compile(regex + r"\Z"), params))
    return sorted(found, key=lambda o: "{" in o.template)


def _group(name: str) -> str:
    return "p_" + re.sub(r"\W", "_", name)


def check(info: PairInfo, profiles: list[str], doc: Mapping[str, Any], served: bool = True) -> None:
    """Refuse (UsageError) a request of `info`'s scenario the endpoint would not accept.

    `profiles`: the profiles whose knob values are checked (a run checks the one it runs);
    `served`: whether the pair is the targets' own (a scenario for another service is not
    described by this document, so nothing is checked).
    """
    if not served:
        return
    ops = operations(doc)
    scenario = info.scenario
    methods = info.methods()
    knob_in_request = scenario.knob_sets == "request"
    for profile in profiles:
        load = scenario.profiles.get(profile)
        if load is None:
            continue
        knobs = list(load.knob_values) if knob_in_request else list(load.knob_values[:1])
        for knob in knobs:
            for variant in methods:
                for index in range(len(scenario.request.steps)):
                    step = scenario.request.step_for(variant, index)
                    method = step.method or methods[variant]
                    where = f"{scenario.source} [profiles.{profile}]"
                    _check_step(scenario, step, variant, method, knob, where, ops)
    for path in (
        scenario.bystander.request if scenario.bystander else None,
        scenario.stats_request,
    ):
        if path is not None and not _PLACEHOLDER.search(path):
            _check_request(scenario.source, "GET", path, path, [], None, ops)


def _check_step(
    scenario: Scenario,
    step: Step,
    variant: str,
    method: str,
    knob: float,
    where: str,
    ops: list[Operation],
) -> None:
    if step.path is None or step.expected_status >= 400:
        return
    keys = [1, scenario.keys.count_at(knob)] if scenario.keys is not None else [None]
    for key in keys:
        values = {"variant": variant, "knob": knob_text(knob)}
        if key is not None:
            values["key"] = str(key)
        query = [(k, str(v)) for k, v in step.query.items()]
        rendered = [(k, _render(v, values)) for k, v in query]
        _check_request(
            where,
            method,
            step.path,
            _render(step.path, values),
            list(zip(query, rendered, strict=True)),
            knob,
            ops,
        )


def _render(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _check_request(
    where: str,
    method: str,
    template: str,
    rendered: str,
    extra: list[tuple[tuple[str, str], tuple[str, str]]],
    knob: float | None,
    ops: list[Operation],
) -> None:
    """One rendered request: its path names an operation, its parameters fit their schemas."""
    raw_path, _, raw_query = template.partition("?")
    path_part, _, query_part = rendered.partition("?")
    if _PLACEHOLDER.search(path_part):
        return  # a [prepare] field: known only once the target answers
    shown = f"{method} {raw_path}"
    matching = [op for op in ops if op.pattern.match(path_part)]
    if not matching:
        raise UsageError(f"{where}: {shown}: the targets serve no path {path_part}")
    op = next((o for o in matching if o.method == method), None)
    if op is None:
        allowed = ", ".join(sorted({o.method for o in matching}))
        raise UsageError(f"{where}: {shown}: the endpoint takes {allowed}, not {method}")
    raw_pairs = parse_qsl(raw_query, keep_blank_values=True)
    given = parse_qsl(urlsplit("?" + query_part).query, keep_blank_values=True)
    pairs = list(zip(raw_pairs, given, strict=True)) if len(raw_pairs) == len(given) else []
    pairs += extra
    found = op.pattern.match(path_part)
    assert found is not None
    for (kind, name), parameter in op.parameters.items():
        if kind == "path":
            value = found.group(_group(name))
            _check_value(where, shown, name, value, "{knob}" in raw_path, knob, parameter)
        elif kind == "query":
            sent = [(raw, value) for (n, raw), (_, value) in pairs if n == name]
            if not sent:
                if parameter.get("required"):
                    raise UsageError(
                        f"{where}: {shown}: no {name}= in the request; the endpoint requires it"
                    )
                continue
            for raw, value in sent:
                _check_value(where, shown, name, value, "{knob}" in raw, knob, parameter)


def _check_value(
    where: str,
    shown: str,
    name: str,
    value: str,
    from_knob: bool,
    knob: float | None,
    parameter: Mapping[str, Any],
) -> None:
    if _PLACEHOLDER.search(value):
        return
    problem = _problem(value, parameter.get("schema") or {})
    if problem is None:
        return
    if from_knob and knob is not None:
        raise UsageError(
            f"{where}: knob value {knob_text(knob)} gives {name}={value}, {problem} for {shown}"
        )
    raise UsageError(
        f"{where.split(' [')[0]}: {name}={value} in the request is {problem} for {shown}"
    )


def _problem(value: str, schema: Mapping[str, Any]) -> str | None:
    """Why `value` (as sent in a URL) does not fit `schema`; None when it does."""
    alternatives = [
        s for s in schema.get("anyOf") or schema.get("oneOf") or [] if isinstance(s, dict)
    ]
    if alternatives:
        problems = [_problem(value, s) for s in alternatives if s.get("type") != "null"]
        if not problems or any(p is None for p in problems):
            return None
        return problems[0]
    kind = schema.get("type")
    if "enum" in schema and value not in [str(v) for v in schema["enum"]]:
        return f"not one of the endpoint's values {', '.join(str(v) for v in schema['enum'])}"
    if kind in ("integer", "number"):
        try:
            number = int(value) if kind == "integer" else float(value)
        except ValueError:
            return f"not {'an integer' if kind == 'integer' else 'a number'}"
        return _out_of_range(number, schema)
    if kind == "boolean" and value.lower() not in _TRUE_FALSE:
        return "not a boolean"
    if kind == "string":
        if "maxLength" in schema and len(value) > int(schema["maxLength"]):
            return f"longer than the endpoint's maximum length {schema['maxLength']}"
        if "minLength" in schema and len(value) < int(schema["minLength"]):
            return f"shorter than the endpoint's minimum length {schema['minLength']}"
        if "pattern" in schema and not re.search(str(schema["pattern"]), value):
            return f"not matching the endpoint's pattern {schema['pattern']}"
    return None


def _out_of_range(number: float, schema: Mapping[str, Any]) -> str | None:
    def shown(bound: Any) -> str:
        return knob_text(float(bound))

    if "minimum" in schema and number < schema["minimum"]:
        return f"below the endpoint's minimum {shown(schema['minimum'])}"
    if "exclusiveMinimum" in schema and number <= schema["exclusiveMinimum"]:
        return f"not above the endpoint's exclusive minimum {shown(schema['exclusiveMinimum'])}"
    if "maximum" in schema and number > schema["maximum"]:
        return f"above the endpoint's maximum {shown(schema['maximum'])}"
    if "exclusiveMaximum" in schema and number >= schema["exclusiveMaximum"]:
        return f"not below the endpoint's exclusive maximum {shown(schema['exclusiveMaximum'])}"
    return None
