"""A variant's request as data: scenario templates rendered into concrete steps, and sent.

A concrete step is a plain JSON-able dict, the same for verification (sent here with httpx) and
for the load generator (sent by locust in another process, docs/architecture.md "Layers"):

    {"method": "POST", "path": "/p/v?n=10&id={key}", "headers": {...}, "body": '{"n": 10}' | None,
     "status": 200, "carry": {"If-None-Match": "ETag"}, "once": false, "measure": true}

`status` is an int, or a list of the statuses the step accepts under load (`[200, 429]`), whose
first is the one verification expects (`expected_status`, `accepted_statuses`).

Everything but `{key}` is filled once per knob value; `{key}` stays in the path, header values
and the body text, for the load generator to fill per request with a cheap str.replace. In a
JSON body a string that is exactly a placeholder becomes the value itself (`"n": "{knob}"`
sends a number), so `"{key}"` with its quotes is replaced by the key's digits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from pairbench.errors import InfrastructureError

from .catalogue import PairInfo
from .scenario import Scenario, Step, _Template, knob_text

KEY = "{key}"
QUOTED_KEY = '"{key}"'
BODY_PREVIEW = 120
QUERY_SAFE = "{}"  # keep {key} literal in query values, to be filled per request

# What locust's FastHttpSession sends unless told otherwise: verification sees what load sees.
ACCEPT_ENCODING = "gzip, deflate, br"

Concrete = dict[str, Any]


def prepare(client: httpx.Client, scenario: Scenario, knob: float) -> dict[str, Any]:
    """The scenario's [prepare] request's JSON fields at `knob` (empty when there is none)."""
    spec = scenario.prepare
    if spec is None:
        return {}
    url = spec.request.replace("{knob}", knob_text(knob))
    try:
        response = client.get(url)
    except httpx.TransportError as e:
        raise InfrastructureError(f"prepare {url}: {e}") from e
    body = response.json() if response.status_code == httpx.codes.OK else None
    if not isinstance(body, dict):
        raise InfrastructureError(f"prepare {url} -> {response.status_code}: {response.text[:120]}")
    return {k: ("" if v is None else v) for k, v in body.items()}


def _render_json(value: Any, values: Mapping[str, Any], scenario: Scenario) -> Any:
    if isinstance(value, str):
        exact = value[1:-1] if value.startswith("{") and value.endswith("}") else None
        if exact is not None and exact.isidentifier() and exact != "key" and exact in values:
            raw = values[exact]
            return raw
        return scenario.fill(value.format_map(_Template({k: str(v) for k, v in values.items()})))
    if isinstance(value, dict):
        return {k: _render_json(v, values, scenario) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_json(v, values, scenario) for v in value]
    return value


def _render_step(
    scenario: Scenario, step: Step, variant: str, default_method: str, values: dict[str, Any]
) -> Concrete:
    text = _Template({k: str(v) for k, v in values.items()})
    quoted = _Template({k: quote(str(v), safe="") for k, v in values.items()})
    assert step.path is not None  # Scenario.check_variants guarantees one per variant
    path = scenario.fill(step.path.format_map(quoted))
    if step.query:
        pairs = [
            f"{quote(k, safe='')}={quote(scenario.fill(str(v).format_map(text)), safe=QUERY_SAFE)}"
            for k, v in step.query.items()
        ]
        path += ("&" if "?" in path else "?") + "&".join(pairs)
    headers = {k: scenario.fill(v.format_map(text)) for k, v in step.headers.items()}
    body = None
    if step.json_body is not None:
        body = json.dumps(_render_json(step.json_body, values, scenario))
        headers.setdefault("Content-Type", "application/json")
    return {
        "method": step.method or default_method,
        "path": path,
        "headers": headers,
        "body": body,
        "status": step.status,
        "carry": dict(step.carry),
        "once": step.once,
        "measure": step.measure,
    }


def _knob_value(knob: float) -> int | float:
    return int(knob) if float(knob).is_integer() else knob


def render(
    scenario: Scenario, variant: str, knob: float, extra: Mapping[str, Any], method: str = "GET"
) -> list[Concrete]:
    """A variant's concrete steps at `knob`, with the [prepare] fields in `extra`."""
    values: dict[str, Any] = {"variant": variant, "knob": _knob_value(knob), **extra}
    return [
        _render_step(scenario, scenario.request.step_for(variant, i), variant, method, values)
        for i in range(len(scenario.request.steps))
    ]


def for_variants(pair: PairInfo, client: httpx.Client, knob: float) -> dict[str, list[Concrete]]:
    """Every variant's concrete steps at `knob`, after the scenario's [prepare] request if any."""
    extra = prepare(client, pair.scenario, knob)
    methods = pair.methods()
    return {
        v.name: render(pair.scenario, v.name, knob, extra, methods.get(v.name, "GET"))
        for v in pair.variants
    }


def with_key(steps: list[Concrete], key: int | None) -> list[Concrete]:
    """The steps with `{key}` filled (verification sends fixed keys; the load generator draws)."""
    if key is None:
        return steps
    digits = str(key)
    return [
        {
            **s,
            "path": s["path"].replace(KEY, digits),
            "headers": {k: v.replace(KEY, digits) for k, v in s["headers"].items()},
            "body": None
            if s["body"] is None
            else s["body"].replace(QUOTED_KEY, digits).replace(KEY, digits),
        }
        for s in steps
    ]


def expected_status(step: Concrete) -> int:
    """The status verification expects of the step's lone request: the first one listed."""
    status = step["status"]
    return int(status[0]) if isinstance(status, list) else int(status)


def accepted_statuses(step: Concrete) -> frozenset[int]:
    """Every status the step accepts under load (one, unless the scenario lists several)."""
    status = step["status"]
    return frozenset(int(s) for s in status) if isinstance(status, list) else frozenset({status})


def describe(step: Concrete) -> str:
    """`POST /path` for messages."""
    return f"{step['method']} {step['path']}"


@dataclass(frozen=True)
class Reply:
    """One reply as the wire carried it: the body is raw (Content-Encoding not undone)."""

    status: int
    headers: httpx.Headers
    raw: bytes


def send(
    client: httpx.Client,
    step: Concrete,
    previous: Reply | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> Reply:
    """Send one concrete step; `carry` takes header values from `previous`."""
    headers = {"Accept-Encoding": ACCEPT_ENCODING, **step["headers"]}
    if previous is not None:
        for into, source in step["carry"].items():
            value = previous.headers.get(source)
            if value is not None:
                headers[into] = value
    headers.update(extra_headers or {})
    body = step["body"]
    outgoing = client.build_request(
        step["method"],
        step["path"],
        headers=headers,
        content=None if body is None else body.encode(),
    )
    try:
        # Streamed and read raw: the equivalence rules decide whether encodings are undone.
        response = client.send(outgoing, stream=True)
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
    except httpx.TransportError as e:
        raise InfrastructureError(f"{describe(step)}: {e}") from e
    return Reply(response.status_code, response.headers, raw)


def send_all(
    client: httpx.Client, steps: list[Concrete], extra_headers: Mapping[str, str] | None = None
) -> list[Reply]:
    """Send a variant's steps in order, carrying headers from one reply into the next."""
    replies: list[Reply] = []
    for step in steps:
        replies.append(send(client, step, replies[-1] if replies else None, extra_headers))
    return replies
