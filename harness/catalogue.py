"""What the harness knows of a pair: the scenario file joined with the target's /pairs listing.

The harness never imports a pair's handler code: variants, roles, labels and the knob come over
HTTP from the running target (or, for a user's own service, from the scenario file itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from pairbench.errors import InfrastructureError, UsageError

from . import metricsclient
from .scenario import KnobSpec, Scenario, knob_text


@dataclass(frozen=True)
class VariantInfo:
    """A variant as reports show it."""

    name: str
    role: str
    label: str


@dataclass(frozen=True)
class PairInfo:
    """A scenario resolved against the target."""

    scenario: Scenario
    title: str
    summary: str
    variants: list[VariantInfo]  # worst to best
    knob: KnobSpec

    @property
    def name(self) -> str:
        return self.scenario.pair

    @property
    def bad(self) -> str:
        """The reference bad variant, the ratios' numerator: the first bad one (worst first)."""
        return next(v.name for v in self.variants if v.role == "bad")

    def paths(self, client: httpx.Client, knob: float) -> dict[str, str]:
        """Each variant's request path at `knob`, after the scenario's [prepare] request if any."""
        extra: dict[str, Any] = {}
        prepare = self.scenario.prepare
        if prepare is not None:
            url = prepare.request.replace("{knob}", knob_text(knob))
            try:
                response = client.get(url)
            except httpx.TransportError as e:
                raise InfrastructureError(f"prepare {url}: {e}") from e
            if response.status_code != 200 or not isinstance(response.json(), dict):
                raise InfrastructureError(
                    f"prepare {url} -> {response.status_code}: {response.text[:120]}"
                )
            extra = {k: ("" if v is None else v) for k, v in response.json().items()}
        return {v.name: self.scenario.path(v.name, knob, extra) for v in self.variants}

    def record(self) -> dict[str, Any]:
        """The pair's description as stored in run.json."""
        return {
            "title": self.title,
            "description": self.summary,
            "variants": [{"name": v.name, "label": v.label, "role": v.role} for v in self.variants],
            "bad": self.bad,
            "knob": {**self.knob.model_dump(), "values": []},
        }


def fetch_listing(base_url: str) -> dict[str, dict[str, Any]]:
    """The target's /pairs, by name; empty when the target has no such endpoint."""
    try:
        response = httpx.get(base_url + "/pairs", timeout=10.0)
    except httpx.TransportError as e:
        raise InfrastructureError(f"{base_url}/pairs: {e}") from e
    if response.status_code == 404:
        return {}
    response.raise_for_status()
    return {p["name"]: p for p in response.json()}


def resolve(scenario: Scenario, listing: dict[str, dict[str, Any]]) -> PairInfo:
    """Join a scenario with the target's description of its pair; disagreements are usage errors."""
    served = listing.get(scenario.pair)
    if served is None:
        if scenario.variants is None or scenario.knob is None:
            raise UsageError(
                f"{scenario.source}: the target serves no pair {scenario.pair!r};"
                " a scenario for another service must list [variants] and [knob]"
            )
        variants = [VariantInfo(n, r, n) for n, r in scenario.variants.items()]
        knob, title, summary = scenario.knob, scenario.title or scenario.pair, ""
    else:
        variants = [VariantInfo(v["name"], v["role"], v["label"]) for v in served["variants"]]
        if scenario.variants is not None and list(scenario.variants) != [v.name for v in variants]:
            raise UsageError(
                f"{scenario.source}: variants {list(scenario.variants)} differ from the target's"
                f" {[v.name for v in variants]}"
            )
        knob = scenario.knob or KnobSpec(**served["knob"])
        title, summary = scenario.title or served["title"], served["summary"]
    roles = [v.role for v in variants]
    if "bad" not in roles or "good" not in roles:
        raise UsageError(f"{scenario.source}: a pair needs a bad and a good variant")
    names = {v.name for v in variants}
    for counter, per_variant in scenario.mechanism.items():
        if counter not in metricsclient.COUNTERS:
            known = ", ".join(metricsclient.COUNTERS)
            raise UsageError(
                f"{scenario.source}: [mechanism.{counter}]: unknown counter (known: {known})"
            )
        extra = set(per_variant) - names
        if extra:
            raise UsageError(
                f"{scenario.source}: [mechanism.{counter}] names unknown variant {sorted(extra)[0]!r}"
            )
    return PairInfo(scenario, title, summary, variants, knob)
