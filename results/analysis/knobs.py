"""Knob values: their string keys in `analysis`, their order, and the expectation's knob."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pairbench.runmodel import MAX_KNOB, knob_key

__all__ = [
    "MAX_KNOB",
    "expectation_knob_key",
    "knob_axis_label",
    "knob_key",
    "knob_keys",
    "sorted_keys",
]


# A client_mbit knob's largest value: the client link without a bandwidth limit.
UNLIMITED_MBIT_KEY = "100000"


def sorted_keys(keys: Iterable[str]) -> list[str]:
    """Knob keys in numeric order."""
    return sorted(set(keys), key=float)


def knob_keys(pair: Mapping[str, Any]) -> list[str]:
    """Every knob value of a pair (declared or measured), as keys, in numeric order."""
    declared = (knob_key(v) for v in pair.get("knob", {}).get("values", []))
    measured = (knob_key(t["knob"]) for t in pair.get("trials", []))
    return sorted_keys([*declared, *measured])


def expectation_knob_key(pair: Mapping[str, Any]) -> str | None:
    """The key of the knob value the expectation is checked at, or None without one."""
    expectation = pair.get("expectation") or {}
    knob = expectation.get("knob", MAX_KNOB)
    if knob == MAX_KNOB:
        keys = knob_keys(pair)
        return keys[-1] if keys else None
    return knob_key(knob)


def knob_text(pair: Mapping[str, Any], value: str | float) -> str:
    """A knob value for prose, e.g. `n=200`, from its key ("200") or the number itself."""
    key = value if isinstance(value, str) else knob_key(value)
    if key == UNLIMITED_MBIT_KEY and _bandwidth_knob(pair):
        key = "unlimited"  # docs/architecture.md, "The link emulator"
    return f"{pair.get('knob', {}).get('name', 'knob')}={key}"


def _bandwidth_knob(pair: Mapping[str, Any]) -> bool:
    """Whether the knob set the client link's bandwidth (run.json `link.client.mbit_from_knob`)."""
    client = (pair.get("link") or {}).get("client") or {}
    return bool(client.get("mbit_from_knob"))


def knob_axis_label(pair: Mapping[str, Any]) -> str:
    """An axis label with the unit, e.g. `rows per page (rows)`."""
    knob = pair.get("knob", {})
    label = knob.get("label") or knob.get("name", "knob")
    unit = knob.get("unit")
    return f"{label} ({unit})" if unit else str(label)
