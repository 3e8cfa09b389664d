"""Colours by role, the same in every figure: bad warm, middle orange, good cool."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

# Several variants may share a role; each takes the next colour of its role's family.
ROLE_COLOURS: dict[str, tuple[str, ...]] = {
    "bad": ("#c62828", "#e53935"),  # reds
    "middle": ("#ef6c00", "#f9a825"),  # orange, amber
    "good": ("#1565c0", "#00897b", "#2e7d32", "#5e35b1"),  # blue, teal, green, indigo
}
FALLBACK_COLOUR = "#616161"  # a role this palette does not know
P50_STYLE: Final = "-"
P99_STYLE: Final = "--"


def variant_colours(variants: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Variant name -> colour, from its role and its position among variants of that role."""
    used: dict[str, int] = {}
    colours: dict[str, str] = {}
    for variant in variants:
        role = str(variant.get("role"))
        family = ROLE_COLOURS.get(role, (FALLBACK_COLOUR,))
        index = used.get(role, 0)
        colours[variant["name"]] = family[index % len(family)]
        used[role] = index + 1
    return colours
