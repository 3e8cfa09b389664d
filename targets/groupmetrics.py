"""/metrics for a member of the process group: its own counters plus its siblings', summed.

The harness reads one URL before and after a trial whichever member served the requests
(docs/architecture.md, "The process group"), so every member's /metrics answers for the whole
group: it asks each sibling for `/metrics?local=1` on the sibling's private port (the sibling's
process-local counters, without the server-wide values it would read from Redis, PostgreSQL and
the downstream, which this member's own scrape already holds once) and adds samples with the
same name and labels. Two kinds are not added: the wall clock, the same for every member, takes
the largest (`cpu_seconds / wall_seconds` then reads as server cores busy), and a counter's
`_created` timestamp takes the earliest.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from . import counters
from .groupmember import GROUP_INDEX_ENV, GROUP_PORTS_ENV

SIBLING_TIMEOUT_S = 5.0
SIBLING_HOST = "127.0.0.1"  # members listen on loopback only (harness/group.py)
_LARGEST = frozenset({f"{counters.WALL_SECONDS_METRIC}_total"})


def siblings() -> list[int]:
    """The other members' private ports; [] outside a group."""
    ports = [int(p) for p in os.environ.get(GROUP_PORTS_ENV, "").split(",") if p.strip()]
    if not ports:
        return []
    own = int(os.environ.get(GROUP_INDEX_ENV, "-1"))
    return [p for i, p in enumerate(ports) if i != own]


async def gather(own: bytes, ports: list[int], reset_peak: bool, release: bool = False) -> bytes:
    """`own` exposition plus the siblings' local ones, added sample by sample (`reset_peak` and
    `release` passed on, as /metrics takes them)."""
    async with httpx.AsyncClient(timeout=SIBLING_TIMEOUT_S) as client:
        replies = await asyncio.gather(
            *(
                client.get(
                    f"http://{SIBLING_HOST}:{port}/metrics",
                    params={"local": 1, "reset_peak": int(reset_peak), "release": int(release)},
                )
                for port in ports
            )
        )
    texts = [own.decode()]
    for reply in replies:
        reply.raise_for_status()  # a sibling that cannot answer fails the scrape, never hides
        texts.append(reply.text)
    return merge(texts)


def merge(texts: list[str]) -> bytes:
    """Prometheus texts combined: families in the first text's order, samples added."""
    families: dict[str, Metric] = {}
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            kept = families.setdefault(family.name, family)
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in values:
                    if kept is not family:
                        kept.samples.append(sample)
                    values[key] = sample.value
                elif sample.name in _LARGEST:
                    values[key] = max(values[key], sample.value)
                elif sample.name.endswith("_created"):
                    values[key] = min(values[key], sample.value)
                else:
                    values[key] += sample.value
    for family in families.values():
        family.samples = [
            s._replace(value=values[(s.name, tuple(sorted(s.labels.items())))])
            for s in family.samples
        ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed(Collector):
    """Families already computed, reported as they are."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families
