"""Synthetic runs built from real HdrHistograms, so the results package is tested offline.

The pairs are neutral, named after no built-in pair: "demo" (an N+1-like sweep) and "busy"
(CPU work on the loop, judged on a bystander, /busy/ping), so adding or removing a built-in pair
never breaks these tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from pairbench.results.io.histograms import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS

ROUNDS = 4
KNOBS = (1, 10, 100)
REQUESTS_PER_TRIAL = 300
ELAPSED_S = 5.0
USERS = 8
RUN_SEED = 7
# Per-request spread and per-round drift, as multiplicative log-normal noise.
REQUEST_SIGMA = 0.2
ROUND_SIGMA = 0.05
VARIANTS = (
    {"name": "lazy", "label": "One query per parent row.", "role": "bad"},
    {"name": "selectin", "label": "One extra query per page.", "role": "middle"},
    {"name": "join", "label": "One JOIN.", "role": "good"},
)

START = 1_700_000_000.0  # Unix time of the first trial
TRIAL_GAP_S = 0.5  # warm-up between two trials

LatencyModel = Callable[[str, float], float]  # (variant, knob) -> typical latency in ms
CounterModel = Callable[[str, float], dict[str, float]]  # (variant, knob) -> counters per request


def demo_ms(variant: str, knob: float) -> float:
    """The default model: lazy grows with the knob, selectin a little, join stays flat."""
    return {"lazy": 10.0 * knob**0.5, "selectin": 2.0 * knob**0.2, "join": 1.0}[variant]


def queries_per_request(variant: str, knob: float) -> float:
    return {"lazy": 1 + knob, "selectin": 2, "join": 1}[variant]


def demo_counters(variant: str, knob: float) -> dict[str, float]:
    """Per request: the queries of the model; a pool (no connections opened); a free loop."""
    return {
        "queries": queries_per_request(variant, knob),
        "db_connections_opened": 0.0,
        "loop_lag_seconds_sum": 0.00005,
        "loop_lag_samples": 1.0,
    }


BUSY_VARIANTS = (
    {"name": "inline", "label": "CPU work inside async def.", "role": "bad"},
    {"name": "thread", "label": "In a thread (the GIL trap).", "role": "middle"},
    {"name": "process", "label": "In a process pool.", "role": "good"},
)
BUSY_KNOBS = (1, 10, 50)


def busy_ms(variant: str, knob: float) -> float:
    """Each variant does the same work; offloading adds a little overhead."""
    return {"inline": 1.0, "thread": 1.2, "process": 1.5}[variant] * knob + 0.5


def busy_bystander_ms(variant: str, knob: float) -> float:
    """The ping waits behind the CPU work on the loop (inline), partly (thread), or not at all."""
    return {"inline": 0.3 + USERS * knob / 2, "thread": 0.3 + knob / 2, "process": 0.3}[variant]


def busy_counters(variant: str, knob: float) -> dict[str, float]:
    """Per request: the loop lags by the work it runs inline; no database, a cache of sorts."""
    lag_s = {"inline": knob / 1000, "thread": knob / 4000, "process": 0.00005}[variant]
    return {
        "loop_lag_seconds_sum": lag_s,
        "loop_lag_samples": 1.0,
        "cache_hits": 0.9,
        "cache_misses": 0.1,
    }


class Synth:
    """Builders for trials, pairs and runs in the documented run.json format."""

    @staticmethod
    def encode(values_us: Iterable[float]) -> str:
        histogram = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        for value in values_us:
            histogram.record_value(max(LOWEST_US, round(value)))
        return histogram.encode().decode("ascii")

    @staticmethod
    def encode_scaled(encoded: str, factor: float) -> str:
        """An encoded histogram with every recorded value multiplied by `factor`."""
        source = HdrHistogram.decode(encoded)
        scaled = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        for item in source.get_recorded_iterator():
            value = max(LOWEST_US, round(item.value_iterated_to * factor))
            scaled.record_value(value, item.count_at_value_iterated_to)
        return scaled.encode().decode("ascii")

    @staticmethod
    def trial(
        knob: float,
        round_index: int,
        variant: str,
        values_us: Sequence[float],
        *,
        valid: bool = True,
        reasons: Sequence[str] = (),
        queries: float | None = None,
        counters: dict[str, float] | None = None,
        elapsed_s: float = ELAPSED_S,
        errors: int = 0,
        bystander_us: Sequence[float] | None = None,
        started_at: float | None = None,
    ) -> dict[str, Any]:
        counters = dict(counters or {})
        if queries is not None:
            counters["queries"] = queries
        bystander = None
        if bystander_us is not None:
            bystander = {
                "requests": len(bystander_us),
                "errors": 0,
                "clipped": 0,
                "histogram": Synth.encode(bystander_us),
            }
        return {
            "knob": knob,
            "round": round_index,
            "position": 0,
            "variant": variant,
            "users": USERS,
            "started_at": START + round_index if started_at is None else started_at,
            "elapsed_s": elapsed_s,
            "requests": len(values_us) + errors,
            "errors": errors,
            "histogram": Synth.encode(values_us),
            "bystander": bystander,
            "generator_cpu_percent": 40.0,
            "counters": counters,
            "valid": valid,
            "invalid_reasons": list(reasons),
        }

    @staticmethod
    def sweep(
        model: LatencyModel = demo_ms,
        *,
        knobs: Sequence[float] = KNOBS,
        rounds: int = ROUNDS,
        variants: Sequence[dict[str, str]] = VARIANTS,
        requests: int = REQUESTS_PER_TRIAL,
        seed: int = RUN_SEED,
        round_sigma: float = ROUND_SIGMA,
        counters: CounterModel | None = None,
        bystander: LatencyModel | None = None,
    ) -> list[dict[str, Any]]:
        """One trial per (knob, round, variant), latencies log-normal around the model.

        Trials follow each other in time, knob by knob, rounds interleaving the variants.
        """
        rng = np.random.default_rng(seed)
        counters = counters or demo_counters
        trials = []
        clock = START
        for knob in knobs:
            for round_index in range(rounds):
                for position, variant in enumerate(variants):
                    name = variant["name"]
                    typical_us = model(name, knob) * 1000 * rng.lognormal(0.0, round_sigma)
                    values = typical_us * rng.lognormal(0.0, REQUEST_SIGMA, requests)
                    by_us = None
                    if bystander is not None:
                        by_typical_us = bystander(name, knob) * 1000
                        by_us = by_typical_us * rng.lognormal(0.0, REQUEST_SIGMA, requests // 3)
                    # Closed loop: each user waits for its reply, so rps = users / latency.
                    elapsed = requests * typical_us / 1e6 / USERS
                    trial = Synth.trial(
                        knob,
                        round_index,
                        name,
                        values,
                        counters={k: v * requests for k, v in counters(name, knob).items()},
                        elapsed_s=elapsed,
                        bystander_us=by_us,
                        started_at=clock,
                    )
                    trials.append({**trial, "position": position})
                    clock += elapsed + TRIAL_GAP_S
        return trials

    @staticmethod
    def pair(
        trials: list[dict[str, Any]],
        *,
        variants: Sequence[dict[str, str]] = VARIANTS,
        knobs: Sequence[float] = KNOBS,
        min_ratio: float = 5.0,
        expectation_knob: float | str = "max",
        metric: str = "p50",
        subject: str = "variant",
        title: str = "N+1 queries",
        description: str = "Lazy loading issues one query per parent row.",
        knob: tuple[str, str, str] = ("n", "rows per page", "rows"),
    ) -> dict[str, Any]:
        return {
            "title": title,
            "description": description,
            "variants": [dict(v) for v in variants],
            "bad": next(v["name"] for v in variants if v["role"] == "bad"),
            "knob": {
                "name": knob[0],
                "label": knob[1],
                "unit": knob[2],
                "values": list(knobs),
                "log_scale": True,
            },
            "load": {
                "model": "closed",
                "users": USERS,
                "warmup_seconds": 2.0,
                "round_seconds": ELAPSED_S,
                "rounds": ROUNDS,
            },
            "expectation": {
                "metric": metric,
                "subject": subject,
                "knob": expectation_knob,
                "min_ratio": min_ratio,
            },
            "verification": {
                "passed": True,
                "checks": [
                    {
                        "name": "same body",
                        "knob": knobs[-1],
                        "variant": variants[-1]["name"],
                        "passed": True,
                        "detail": "bodies equal",
                    },
                ],
            },
            "trials": trials,
        }

    @staticmethod
    def busy_pair(seed: int = RUN_SEED, rounds: int = ROUNDS) -> dict[str, Any]:
        """The busy pair: judged on its bystander's p99, which the inline variant freezes."""
        trials = Synth.sweep(
            busy_ms,
            knobs=BUSY_KNOBS,
            rounds=rounds,
            variants=BUSY_VARIANTS,
            seed=seed,
            counters=busy_counters,
            bystander=busy_bystander_ms,
        )
        pair = Synth.pair(
            trials,
            variants=BUSY_VARIANTS,
            knobs=BUSY_KNOBS,
            min_ratio=5.0,
            metric="p99",
            subject="bystander",
            title="CPU work on the event loop",
            description="Pure-Python CPU work inside async def blocks every other request.",
            knob=("ms", "CPU time per request", "ms"),
        )
        pair["scenario"] = {"bystander": {"request": "/busy/ping", "users": 1}}
        return pair

    @staticmethod
    def run(
        pairs: dict[str, dict[str, Any]], run_id: str = "20250101-120000-demo"
    ) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "run_id": run_id,
            "status": "complete",
            "started_at": "2025-01-01T12:00:00Z",
            "finished_at": "2025-01-01T12:10:00Z",
            "profile": "quick",
            "seed": RUN_SEED,
            "command": ["pairbench", "run", "demo", "--profile", "quick"],
            "metadata": {
                "pairbench_version": "0.1.0",
                "python": "3.11.9",
                "machine": {"cpu_model": "Test CPU 9000", "cores": 2, "platform": "Linux"},
                "postgres": {"version": "18.0", "source": "embedded"},
            },
            "pairs": pairs,
        }

    @staticmethod
    def slower(variant: str, factor: float, model: LatencyModel = demo_ms) -> LatencyModel:
        """The model with one variant `factor` times slower."""
        return lambda name, knob: model(name, knob) * (factor if name == variant else 1.0)

    @staticmethod
    def demo_run(
        seed: int, run_id: str, model: LatencyModel = demo_ms, **sweep: Any
    ) -> dict[str, Any]:
        """A one-pair demo run of its own: for comparing runs against each other."""
        trials = Synth.sweep(model, seed=seed, **sweep)
        return Synth.run({"demo": Synth.pair(trials)}, run_id)

    @staticmethod
    def interleaved_run(
        seed: int,
        run_id: str,
        new_model: LatencyModel = demo_ms,
        base_model: LatencyModel = demo_ms,
        *,
        rounds: int = 5,
        drift_sigma: float = 0.15,
        trial_sigma: float = 0.02,
        requests: int = REQUESTS_PER_TRIAL,
        knobs: Sequence[float] = KNOBS,
    ) -> dict[str, Any]:
        """A gate run: base and new measured in the same rounds. Each round's machine state
        (`drift_sigma`) moves both sides alike; each trial adds its own small noise."""
        rng = np.random.default_rng(seed)
        sides: dict[str, list[dict[str, Any]]] = {"new": [], "base": []}
        models = {"new": new_model, "base": base_model}
        clock = START
        for knob in knobs:
            for round_index in range(rounds):
                drift = rng.lognormal(0.0, drift_sigma)
                for side in ("new", "base"):
                    for position, variant in enumerate(VARIANTS):
                        name = variant["name"]
                        typical_us = models[side](name, knob) * 1000 * drift
                        typical_us *= rng.lognormal(0.0, trial_sigma)
                        values = typical_us * rng.lognormal(0.0, REQUEST_SIGMA, requests)
                        elapsed = requests * typical_us / 1e6 / USERS
                        trial = Synth.trial(
                            knob, round_index, name, values, elapsed_s=elapsed, started_at=clock
                        )
                        sides[side].append({**trial, "position": position})
                        clock += elapsed + TRIAL_GAP_S
        run = Synth.run({"demo": Synth.pair(sides["new"], knobs=knobs)}, run_id)
        run["baseline"] = {
            "ref": "HEAD",
            "commit": "0" * 40,
            "environment": "the current environment (dependencies unchanged)",
            "build_seconds": 1.0,
            "server": {"url": "http://127.0.0.1:1", "argv": [], "workers": 1},
            "dataset": "shared with the new side",
            "pairs": {"demo": Synth.pair(sides["base"], knobs=knobs)},
        }
        return run

    @staticmethod
    def write(folder: Path, run: dict[str, Any]) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "run.json"
        path.write_text(json.dumps(run, indent=2), encoding="utf-8")
        return path


@pytest.fixture(scope="session")
def synth() -> type[Synth]:
    return Synth


@pytest.fixture(scope="session")
def demo_run() -> dict[str, Any]:
    """A complete synthetic run: one pair, three variants, three knob values, four rounds."""
    return Synth.run({"demo": Synth.pair(Synth.sweep())})


@pytest.fixture(scope="session")
def two_pair_run() -> dict[str, Any]:
    """The demo and the busy pair (with a bystander and every mechanism counter) in one run."""
    pairs = {"demo": Synth.pair(Synth.sweep()), "busy": Synth.busy_pair()}
    return Synth.run(pairs, run_id="20250101-120000-demo-busy")


@pytest.fixture
def run_dir(tmp_path: Path, demo_run: dict[str, Any]) -> Path:
    folder = tmp_path / demo_run["run_id"]
    Synth.write(folder, demo_run)
    return folder
