"""Knob keys and the expectation's knob."""

from __future__ import annotations

from pairbench.results.analysis.knobs import (
    expectation_knob_key,
    knob_axis_label,
    knob_key,
    knob_keys,
    knob_text,
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


def test_the_unlimited_client_link_is_named_so() -> None:
    linked = {"knob": {"name": "client_mbit"}, "link": {"client": {"mbit_from_knob": True}}}
    assert knob_text(linked, 100_000) == "client_mbit=unlimited"
    assert knob_text(linked, "10") == "client_mbit=10"
    # Without the bandwidth knob the same number is just a number.
    assert knob_text({"knob": {"name": "rows"}, "link": None}, 100_000) == "rows=100000"
