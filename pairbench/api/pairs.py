"""What a pair declares, for people: the lesson a notebook shows before it measures anything.

Read from the targets' describe document and the pair's scenario, as `pairbench list` reads them
(docs/architecture.md, "What the targets describe"); nothing is typed twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pairbench.errors import UsageError
from pairbench.harness import catalogue, scenario


@dataclass(frozen=True)
class Variant:
    """One endpoint of a pair: its name, its role (bad, middle, good) and its label."""

    name: str
    role: str
    label: str


@dataclass(frozen=True)
class PairDescription:
    """A pair's declaration: title, summary, knob, variants (worst to best), the counters that
    carry its lesson, its expectation and the published reference. In Jupyter it displays as
    Markdown."""

    name: str
    title: str
    summary: str
    knob: str
    variants: tuple[Variant, ...]
    counters: tuple[str, ...]
    expectation: str | None
    reference: str | None

    def markdown(self) -> str:
        """The declaration as a short Markdown section."""
        lines = [f"### {self.title} (`{self.name}`)", "", self.summary, ""]
        lines += [f"- **{v.role}** `{v.name}`: {v.label}" for v in self.variants]
        lines += ["", f"Knob: {self.knob}. Mechanism counters: {', '.join(self.counters)}."]
        if self.expectation:
            lines.append(f"Expectation: {self.expectation}.")
        if self.reference:
            lines.append(f"Published: {self.reference}.")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.markdown()


def describe(pair: str) -> PairDescription:
    """The declaration of `pair` (its module and its scenario); UsageError for an unknown name."""
    described = catalogue.describe()
    if pair not in described.pairs:
        known = ", ".join(sorted(described.pairs)) or "none"
        raise UsageError(f"unknown pair {pair!r}; known pairs: {known}")
    doc = described.pairs[pair]
    files = scenario.available()
    expected = scenario.load_scenario(files[pair]).expectation if pair in files else None
    return PairDescription(
        name=pair,
        title=str(doc.get("title", pair)),
        summary=str(doc.get("summary", "")),
        knob=_knob(doc.get("knob") or {}),
        variants=tuple(
            Variant(str(v["name"]), str(v["role"]), str(v.get("label", "")))
            for v in doc.get("variants", [])
        ),
        counters=tuple(str(c) for c in doc.get("counters", [])),
        expectation=_expectation(doc, expected),
        reference=_reference(doc.get("reference")),
    )


def _knob(knob: Mapping[str, Any]) -> str:
    unit = f", in {knob['unit']}" if knob.get("unit") else ""
    return f"`{knob.get('name', 'knob')}`, {knob.get('label', '')}{unit}"


def _expectation(doc: Mapping[str, Any], expected: scenario.Expectation | None) -> str | None:
    if expected is None:
        return None
    bad = next((v["name"] for v in doc.get("variants", []) if v.get("role") == "bad"), "bad")
    whose = "a bystander's " if expected.subject == "bystander" else ""
    where = "the largest knob value" if expected.at == "max" else f"{expected.at:g}"
    return (
        f"{whose}{expected.metric} of `{bad}` at least {expected.min_ratio:g}x every good "
        f"variant's, at {where}"
    )


def _reference(reference: Mapping[str, Any] | None) -> str | None:
    if not reference:
        return None
    return f"{reference.get('figure')} ({reference.get('source')})"
