"""The latency percentile spectrum at one knob value, HdrHistogram style (x in nines)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

from ..analysis.findings import NO_DATA, spectrum_finding
from ..analysis.stats import merged_histograms
from ..io import histograms
from .canvas import finish, new_figure, no_data, plain_log_y
from .palette import variant_colours

SPECTRUM_SIZE_IN = (8.0, 5.5)
# The spectrum's x ticks: 1 / (1 - p) = 10^k is the percentile with k nines.
SPECTRUM_TICKS = {1.0: "0%", 10.0: "90%", 100.0: "99%", 1e3: "99.9%", 1e4: "99.99%", 1e5: "99.999%"}

Pair = Mapping[str, Any]


def spectrum_figure(
    pair: Pair, analysis: Mapping[str, Any], key: str | None, caption_text: str
) -> Figure:
    """Latency by percentile at one knob key, HdrHistogram style (x in nines)."""
    figure = new_figure(SPECTRUM_SIZE_IN)
    axes = figure.subplots()
    colours = variant_colours(pair["variants"])
    merged = merged_histograms(pair, key) if key is not None else {}
    x_max = 1.0
    for name, histogram in merged.items():
        x, y = histograms.spectrum_ms(histogram)
        if not x:
            continue
        x_max = max(x_max, x[-1])
        count = histogram.get_total_count()
        axes.plot(x, y, color=colours[name], label=f"{name} ({count:,} requests)")
    if x_max > 1.0:
        axes.set_xscale("log")
        plain_log_y(axes)
        axes.set_xlim(1.0, x_max)
        ticks = [t for t in SPECTRUM_TICKS if t <= x_max]
        axes.set_xticks(ticks, [SPECTRUM_TICKS[t] for t in ticks])
        axes.legend(fontsize="small")
    else:
        no_data(axes, NO_DATA)
    axes.set_xlabel("percentile (log scale of 1 / (1 - p))")
    axes.set_ylabel("latency (ms)")
    axes.grid(True, which="both", alpha=0.3)
    finding = spectrum_finding(pair, analysis, key) if key is not None else NO_DATA
    return finish(figure, f"{pair['title']}: {finding}", caption_text)
