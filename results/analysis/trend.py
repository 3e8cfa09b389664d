"""How each variant's median latency grows with the knob: a least-squares line through p50.

OFFSET pagination costs rows skipped, N+1 costs round trips per row: both are linear in the
knob, so the slope ("+0.19 ms per 1,000 rows") is the number a talk quotes, and R² says how
well a line describes the points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

MIN_POINTS = 3  # a line through two points always fits: say nothing rather than R² = 1


def trends(pair: Mapping[str, Any], per_variant: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Variant -> {slope_ms_per_unit, intercept_ms, r2, points}, for variants with enough knob values."""
    out: dict[str, Any] = {}
    for variant in (v["name"] for v in pair["variants"]):
        points = [
            (float(key), float(cells[variant]["p50_ms"]))
            for key, cells in per_variant.items()
            if variant in cells and cells[variant].get("p50_ms") is not None
        ]
        if len({x for x, _ in points}) < MIN_POINTS:
            continue
        x = np.array([p[0] for p in points])
        y = np.array([p[1] for p in points])
        slope, intercept = np.polyfit(x, y, 1)
        residual = float(np.sum((y - (slope * x + intercept)) ** 2))
        total = float(np.sum((y - y.mean()) ** 2))
        out[variant] = {
            "slope_ms_per_unit": float(slope),
            "intercept_ms": float(intercept),
            "r2": 1.0 - residual / total if total > 0 else None,
            "points": len(points),
        }
    return out


def trend_line(pair: Mapping[str, Any], fitted: Mapping[str, Any]) -> str | None:
    """`Trend of p50 per 1,000 rows: offset +0.19 ms (R² 0.99), keyset +0.00 ms (R² 0.12)`."""
    if not fitted:
        return None
    span = max(float(v) for v in pair["knob"]["values"]) if pair["knob"].get("values") else 1.0
    per = _per_unit(span)
    unit = pair["knob"].get("unit") or pair["knob"]["name"]
    parts = []
    for variant, fit in fitted.items():
        r2 = f" (R² {fit['r2']:.2f})" if fit["r2"] is not None else ""
        parts.append(f"{variant} {round(fit['slope_ms_per_unit'] * per, 4):+.3g} ms{r2}")
    return f"Trend of p50 per {per:,g} {unit} (least squares): " + ", ".join(parts)


def _per_unit(span: float) -> float:
    """A round step a reader can picture: per 1, 10, 100, 1,000 ... units, about span/100."""
    step = 1.0
    while step * 1000 <= span:
        step *= 10
    return step
