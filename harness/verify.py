"""Verify before measuring: equal bodies across variants, and the mechanism in the counters.

Each variant is requested alone, between two scrapes of /metrics, so the counter deltas belong
to exactly that request. A pair that fails any check is not benchmarked.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from pairbench.errors import InfrastructureError

from . import metricsclient
from .catalogue import PairInfo

REQUEST_TIMEOUT_S = 30.0
BODY_PREVIEW = 120


@dataclass
class Check:
    """One verification check's outcome."""

    name: str
    knob: float
    variant: str
    passed: bool
    detail: str


@dataclass
class Verification:
    """All checks of one pair."""

    checks: list[Check]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if not c.passed), None)

    def record(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks]}


def _normalized(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


def verify_pair(client: httpx.Client, pair: PairInfo, knob_values: list[float]) -> Verification:
    """Run every check for every knob value."""
    checks: list[Check] = []
    keys = pair.scenario.keys.verify if pair.scenario.keys else [None]
    for knob in knob_values:
        paths = pair.paths(client, knob)
        for key in keys:
            concrete = {v: p.replace("{key}", str(key)) for v, p in paths.items()}
            checks.extend(_verify_paths(client, pair, knob, concrete))
    return Verification(checks)


def _verify_paths(
    client: httpx.Client, pair: PairInfo, knob: float, paths: dict[str, str]
) -> list[Check]:
    checks: list[Check] = []
    bodies: dict[str, bytes] = {}
    for variant in pair.variants:
        path = paths[variant.name]
        try:
            before = client.get("/metrics").text
            response = client.get(path)
            after = client.get("/metrics").text
        except httpx.TransportError as e:
            raise InfrastructureError(f"{path}: {e}") from e
        ok = response.status_code == 200
        checks.append(
            Check(
                "status",
                knob,
                variant.name,
                ok,
                f"GET {path} -> {response.status_code}"
                + ("" if ok else f": {response.text[:BODY_PREVIEW]}"),
            )
        )
        if not ok:
            continue
        bodies[variant.name] = response.content
        counters = metricsclient.delta(before, after)
        for counter, per_variant in pair.scenario.mechanism.items():
            if variant.name in per_variant:
                want = per_variant[variant.name].expected(knob)
                got = counters.get(counter)
                shown = "missing" if got is None else f"{got:g}"
                checks.append(
                    Check(
                        f"{counter}_per_request",
                        knob,
                        variant.name,
                        got == want,
                        f"{counter}: {shown}, expected {want:g}",
                    )
                )
    checks.extend(_equivalence(pair, knob, bodies))
    return checks


def _equivalence(pair: PairInfo, knob: float, bodies: dict[str, bytes]) -> list[Check]:
    reference = bodies.get(pair.bad)
    if reference is None:
        return []
    out = []
    for name, body in bodies.items():
        if name == pair.bad:
            continue
        same = _normalized(body) == _normalized(reference)
        detail = (
            "same body"
            + (" (byte-identical)" if body == reference else " (after JSON normalisation)")
            if same
            else f"differs from {pair.bad}: {body[:BODY_PREVIEW]!r} vs {reference[:BODY_PREVIEW]!r}"
        )
        out.append(Check("equal_body", knob, name, same, detail))
    return out
