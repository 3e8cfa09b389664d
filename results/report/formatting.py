"""Numbers for people: the same rounding in titles, findings and tables."""

from __future__ import annotations

MISSING = "–"
# HdrHistogram keeps 3 significant digits; printing more would claim precision we do not have.
SIGNIFICANT_DIGITS = 3
# Ratios from ten up read best as whole numbers ("38x"), below ten with one decimal ("1.4x").
WHOLE_RATIO_FROM = 10.0
# p-values below this print as "<0.001": beyond it the digits mean nothing.
SMALLEST_P_SHOWN = 0.001


def fmt_number(value: float | None, digits: int = SIGNIFICANT_DIGITS) -> str:
    """`value` to `digits` significant digits, never in scientific notation."""
    if value is None:
        return MISSING
    rounded = float(f"{value:.{digits}g}")  # round first: 99.96 is "100", not "100."
    if abs(rounded) >= 10 ** (digits - 1):
        return f"{rounded:.0f}"
    text = f"{rounded:#.{digits}g}"  # '#' keeps trailing zeros: 8.00, not 8
    if "e" in text:  # tiny values: fall back to fixed point with enough decimals
        return f"{value:.{digits + 3}f}".rstrip("0").rstrip(".")
    return text


def fmt_ms(value: float | None) -> str:
    """A latency in ms with its unit, e.g. `4.52 ms`."""
    return MISSING if value is None else f"{fmt_number(value)} ms"


SMALL_RATIO_BELOW = 0.1  # below it a ratio keeps two significant digits


def fmt_ratio(value: float | None) -> str:
    """A ratio such as `38x` or `1.4x`."""
    if value is None:
        return MISSING
    if value >= WHOLE_RATIO_FROM:
        return f"{value:.0f}x"
    if value < SMALL_RATIO_BELOW:  # 0.0006x, not 0.0x
        return f"{value:.2g}x"
    return f"{value:.1f}x"


def fmt_interval(low: float | None, high: float | None) -> str:
    """A confidence interval such as `35x–41x`."""
    if low is None or high is None:
        return MISSING
    return f"{fmt_ratio(low)}–{fmt_ratio(high)}"


def fmt_p(value: float | None) -> str:
    """A p-value, e.g. `0.029` or `<0.001`."""
    if value is None:
        return MISSING
    if value < SMALLEST_P_SHOWN:
        return f"<{SMALLEST_P_SHOWN}"
    return f"{value:.2g}"


def fmt_factor(value: float | None) -> str:
    """A ratio close to 1, with two decimals: `1.30x`, `0.97x` (a run against its baseline)."""
    return MISSING if value is None else f"{value:.2f}x"


def fmt_factor_interval(low: float | None, high: float | None) -> str:
    """An interval of such ratios, e.g. `1.25x–1.36x`."""
    if low is None or high is None:
        return MISSING
    return f"{fmt_factor(low)}–{fmt_factor(high)}"
