"""Role colours: warm for bad, cool for good, stable across figures."""

from __future__ import annotations

from pairbench.results.figures.palette import ROLE_COLOURS, variant_colours


def test_colours_follow_roles_in_order() -> None:
    variants = [
        {"name": "lazy", "role": "bad"},
        {"name": "selectin", "role": "middle"},
        {"name": "join", "role": "good"},
        {"name": "batched", "role": "good"},
    ]
    colours = variant_colours(variants)
    assert colours["lazy"] == ROLE_COLOURS["bad"][0]
    assert colours["selectin"] == ROLE_COLOURS["middle"][0]
    assert colours["join"] == ROLE_COLOURS["good"][0]
    assert colours["batched"] == ROLE_COLOURS["good"][1]
    assert variant_colours(variants) == colours  # every figure gets the same mapping
