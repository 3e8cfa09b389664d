"""Knob keys and the expectation's knob."""

from __future__ import annotations

from pairbench.results.analysis.knobs import (
    expectation_knob_key,
    knob_axis_label,
    knob_key,
    knob_keys,
)


def test_knob_keys_are_canonical_strings() -> None:
    assert knob_key(10) == knob_key(10.0) == "10"
    assert knob_key(0.5) == "0.5"


def test_keys_sort_numerically_and_max_is_the_largest() -> None:
    pair = {
        "knob": {"values": [100, 9, 10.0]},
        "trials": [{"knob": 9}],
        "expectation": {"knob": "max"},
    }
    assert knob_keys(pair) == ["9", "10", "100"]
    assert expectation_knob_key(pair) == "100"
    assert expectation_knob_key({**pair, "expectation": {"knob": 10.0}}) == "10"


def test_axis_label_has_the_unit() -> None:
    assert (
        knob_axis_label({"knob": {"name": "n", "label": "rows", "unit": "rows"}}) == "rows (rows)"
    )
    assert (
        knob_axis_label({"knob": {"name": "ratio", "label": "hit ratio", "unit": ""}})
        == "hit ratio"
    )
