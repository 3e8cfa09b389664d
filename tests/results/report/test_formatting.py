"""Rounding for people."""

from __future__ import annotations

import pytest

from pairbench.results.report.formatting import fmt_interval, fmt_ms, fmt_number, fmt_p, fmt_ratio


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.000123, "0.000123"),
        (0.5, "0.500"),
        (7.995, "8.00"),
        (60, "60.0"),
        (99.96, "100"),
        (1234.5, "1230"),
        (None, "–"),
    ],
)
def test_numbers_keep_three_significant_digits(value: float | None, text: str) -> None:
    assert fmt_number(value) == text


def test_units_ratios_intervals_and_p_values() -> None:
    assert fmt_ms(4.5) == "4.50 ms"
    assert (fmt_ratio(38.2), fmt_ratio(1.44), fmt_ratio(None)) == ("38x", "1.4x", "–")
    assert fmt_interval(1.8, 2.25) == "1.8x–2.2x"
    assert fmt_interval(None, 2.0) == "–"
    assert (fmt_p(0.0286), fmt_p(0.0001), fmt_p(None)) == ("0.029", "<0.001", "–")


def test_a_tiny_ratio_keeps_two_significant_digits() -> None:
    assert fmt_ratio(0.00057) == "0.00057x"
    assert fmt_ratio(0.25) == "0.2x"
