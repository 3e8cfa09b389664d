"""Capacity: the highest arrival rate at which a variant still meets its SLO, and the knee.

Each variant climbs a geometric ladder of open-model rates (start, start*f, start*f^2, ...);
each step is a measured trial with its own coordinated-omission-corrected histogram. The climb
stops at the first step that breaks the SLO (p99, error ratio), misses its rate, or saturates
the load generator; the capacity is the last step that passed. The knee is the last step whose
p99 is within `knee_factor` of the lightest step's: where latency starts to climb the wall.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hdrh.histogram import HdrHistogram

from .catalogue import PairInfo
from .load import LoadAgent
from .scenario import Capacity

US_PER_MS = 1000.0


def _step_verdict(
    spec: Capacity, rate: float, reply: dict[str, Any], cpu_limit: float
) -> list[str]:
    """Why a step fails the SLO, or [] if it meets it."""
    reasons = []
    histogram = HdrHistogram.decode(reply["histogram"])
    p99 = histogram.get_value_at_percentile(99) / US_PER_MS if histogram.get_total_count() else None
    if p99 is None:
        reasons.append("no successful request")
    elif p99 > spec.slo_p99_ms:
        reasons.append(f"p99 {p99:.1f} ms > {spec.slo_p99_ms:g} ms")
    if reply["requests"] and reply["errors"] / reply["requests"] > spec.max_error_ratio:
        reasons.append(
            f"error ratio {reply['errors'] / reply['requests']:.3f} > {spec.max_error_ratio}"
        )
    achieved = reply["open"]["achieved_rate"]
    if achieved < 0.95 * rate:
        reasons.append(f"achieved {achieved:.0f} of {rate:.0f} req/s")
    if reply["generator_cpu_percent"] > cpu_limit:
        reasons.append(
            f"generator CPU {reply['generator_cpu_percent']:.0f}% (the generator, not the server, is the limit)"
        )
    return reasons


def climb(
    agent: LoadAgent,
    requests: list[dict[str, Any]],
    spec: Capacity,
    metrics_url: str,
    cpu_limit: float,
    on_step: Callable[[float], None],
    before: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """One variant's ladder: every step's measurements, the capacity and the knee."""
    steps: list[dict[str, Any]] = []
    rate = spec.start_rate
    while rate <= spec.max_rate:
        on_step(rate)
        before()
        reply = agent.trial(
            requests,
            spec.connections,
            spec.warmup_seconds,
            spec.step_seconds,
            metrics_url,
            rate=rate,
        )
        histogram = HdrHistogram.decode(reply["histogram"])
        reasons = _step_verdict(spec, rate, reply, cpu_limit)
        steps.append(
            {
                "rate": rate,
                "achieved_rate": reply["open"]["achieved_rate"],
                "requests": reply["requests"],
                "errors": reply["errors"],
                "late": reply["open"]["late"],
                "dropped": reply["open"]["dropped"],
                "p50_ms": histogram.get_value_at_percentile(50) / US_PER_MS,
                "p99_ms": histogram.get_value_at_percentile(99) / US_PER_MS,
                "histogram": reply["histogram"],
                "service_histogram": reply.get("service_histogram"),
                "generator_cpu_percent": round(reply["generator_cpu_percent"], 1),
                "meets_slo": not reasons,
                "reasons": reasons,
            }
        )
        if reasons:
            break
        rate *= spec.step_factor
    passed = [s for s in steps if s["meets_slo"]]
    baseline = steps[0]["p99_ms"] if steps and steps[0]["requests"] else None
    knee = [s for s in passed if baseline and s["p99_ms"] <= spec.knee_factor * baseline]
    return {
        "steps": steps,
        "capacity_rate": passed[-1]["rate"] if passed else None,
        "knee_rate": knee[-1]["rate"] if knee else None,
        "limited_by": steps[-1]["reasons"]
        if steps and not steps[-1]["meets_slo"]
        else ["max_rate reached"],
    }


def measure(
    agent: LoadAgent,
    pair: PairInfo,
    paths: dict[str, list[dict[str, Any]]],
    spec: Capacity,
    metrics_url: str,
    cpu_limit: float,
    rng: random.Random,
    on_step: Callable[[str], None],
    before: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Every variant's ladder, in a seeded shuffled order; the record stored in run.json."""
    order = [v.name for v in pair.variants]
    rng.shuffle(order)
    results = {}
    for name in order:

        def step(rate: float, name: str = name) -> None:
            on_step(f"{pair.name} capacity {name} @ {rate:.0f} req/s")

        results[name] = climb(agent, paths[name], spec, metrics_url, cpu_limit, step, before)
    return {"spec": spec.model_dump(), "order": order, "variants": results}
