"""The least-squares trend of p50 against the knob."""

from __future__ import annotations

import pytest

from pairbench.results.analysis.trend import trend_line, trends

PAIR = {
    "variants": [{"name": "offset", "role": "bad"}, {"name": "keyset", "role": "good"}],
    "knob": {"name": "depth", "unit": "rows", "values": [0, 1000, 10000, 100000]},
}


def test_a_linear_cost_gives_its_slope_and_a_perfect_fit() -> None:
    per_variant = {
        str(k): {"offset": {"p50_ms": 1.0 + 0.0002 * k}, "keyset": {"p50_ms": 1.5}}
        for k in (0, 1000, 10000, 100000)
    }
    fitted = trends(PAIR, per_variant)
    assert fitted["offset"]["slope_ms_per_unit"] == pytest.approx(0.0002)
    assert fitted["offset"]["intercept_ms"] == pytest.approx(1.0)
    assert fitted["offset"]["r2"] == pytest.approx(1.0)
    assert fitted["keyset"]["slope_ms_per_unit"] == pytest.approx(0.0, abs=1e-12)
    assert fitted["keyset"]["r2"] is None  # flat: nothing to explain
    line = trend_line(PAIR, fitted)
    assert line is not None and "per 1,000 rows" in line
    assert "offset +0.2 ms (R² 1.00)" in line and "keyset +0 ms" in line


def test_fewer_than_three_knob_values_give_no_trend() -> None:
    per_variant = {"1": {"offset": {"p50_ms": 1.0}}, "2": {"offset": {"p50_ms": 2.0}}}
    assert trends(PAIR, per_variant) == {}
    assert trend_line(PAIR, {}) is None
