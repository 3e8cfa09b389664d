"""Read the target's Prometheus counters as the catalogue describes them, and take a trial's values.

No table of counters lives here (docs/architecture.md, "What the targets describe"): each
catalogue entry names its sample (`metric`, `labels`) and how it accumulates (`kind`). A
`delta` counter's trial value is after minus before; a `peak` counter's is the value after,
the peak since the before-scrape, which therefore asks the target to start a new window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

METRICS_PATH = "/metrics"
RESET_PEAK_QUERY = "?reset_peak=1"
RELEASE_QUERY = "&release=1"  # also give freed memory back first (tens of ms of the server's)
PEAK_RSS = "peak_rss"  # the generic counter whose window `release` makes the variant's own
PEAK = "peak"

Specs = Mapping[str, Mapping[str, Any]]


def urls(base_url: str, lesson: Sequence[str] = ()) -> tuple[str, str]:
    """The before-scrape (starting a new peak window) and after-scrape URLs of a target.

    The server frees what the previous variant left (gc, malloc_trim) before the window only
    for a pair whose lesson is its peak memory (`lesson`: the pair's counters): that takes the
    server's event loop 50 to 120 ms, which every other pair's trials need not wait for.
    """
    url = base_url + METRICS_PATH
    before = url + RESET_PEAK_QUERY + (RELEASE_QUERY if PEAK_RSS in lesson else "")
    return before, url


def parse(text: str, specs: Specs) -> dict[str, float]:
    """The catalogue's counters found in one exposition text (samples summed over labels)."""
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    values: dict[str, float] = {}
    for key, spec in specs.items():
        labels = spec.get("labels") or {}
        for sample in samples:
            if sample.name == spec["metric"] and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                values[key] = values.get(key, 0.0) + float(sample.value)
    return values


def delta(before: str | None, after: str | None, specs: Specs) -> dict[str, float]:
    """Each counter's value over the window between two scrapes (empty when either failed).

    Nothing is parsed when nothing is counted: a service of your own describes no counters,
    and its `/metrics` may be anything, a 404's JSON included."""
    if not before or not after or not specs:
        return {}
    b, a = parse(before, specs), parse(after, specs)
    return {k: a[k] if specs[k].get("kind") == PEAK else a[k] - b.get(k, 0.0) for k in a}
