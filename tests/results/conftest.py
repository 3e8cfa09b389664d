"""Synthetic runs built from real HdrHistograms, so the results package is tested offline."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from pairbench.results.histograms import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS

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

LatencyModel = Callable[[str, float], float]  # (variant, knob) -> typical latency in ms


def n_plus_one_ms(variant: str, knob: float) -> float:
    """The default model: lazy grows with the knob, selectin a little, join stays flat."""
    return {"lazy": 10.0 * knob**0.5, "selectin": 2.0 * knob**0.2, "join": 1.0}[variant]


def queries_per_request(variant: str, knob: float) -> float:
    return {"lazy": 1 + knob, "selectin": 2, "join": 1}[variant]


class Synth:
    """Builders for trials, pairs and runs in the documented run.json format."""

    @staticmethod
    def encode(values_us: Iterable[float]) -> str:
        histogram = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        for value in values_us:
            histogram.record_value(max(LOWEST_US, round(value)))
        return histogram.encode().decode("ascii")

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
        elapsed_s: float = ELAPSED_S,
    ) -> dict[str, Any]:
        counters = {} if queries is None else {"queries": queries}
        return {
            "knob": knob,
            "round": round_index,
            "position": 0,
            "variant": variant,
            "started_at": 1_700_000_000.0 + round_index,
            "elapsed_s": elapsed_s,
            "requests": len(values_us),
            "errors": 0,
            "histogram": Synth.encode(values_us),
            "generator_cpu_percent": 40.0,
            "counters": counters,
            "valid": valid,
            "invalid_reasons": list(reasons),
        }

    @staticmethod
    def sweep(
        model: LatencyModel = n_plus_one_ms,
        *,
        knobs: Sequence[float] = KNOBS,
        rounds: int = ROUNDS,
        variants: Sequence[dict[str, str]] = VARIANTS,
        requests: int = REQUESTS_PER_TRIAL,
        seed: int = RUN_SEED,
    ) -> list[dict[str, Any]]:
        """One trial per (knob, round, variant), latencies log-normal around the model."""
        rng = np.random.default_rng(seed)
        trials = []
        for knob in knobs:
            for round_index in range(rounds):
                for variant in variants:
                    name = variant["name"]
                    typical_us = model(name, knob) * 1000 * rng.lognormal(0.0, ROUND_SIGMA)
                    values = typical_us * rng.lognormal(0.0, REQUEST_SIGMA, requests)
                    queries = queries_per_request(name, knob) * requests
                    # Closed loop: each user waits for its reply, so rps = users / latency.
                    elapsed = requests * typical_us / 1e6 / USERS
                    trials.append(
                        Synth.trial(
                            knob, round_index, name, values, queries=queries, elapsed_s=elapsed
                        )
                    )
        return trials

    @staticmethod
    def pair(
        trials: list[dict[str, Any]],
        *,
        variants: Sequence[dict[str, str]] = VARIANTS,
        knobs: Sequence[float] = KNOBS,
        min_ratio: float = 5.0,
        expectation_knob: float | str = "max",
    ) -> dict[str, Any]:
        return {
            "title": "N+1 queries",
            "description": "Lazy loading issues one query per parent row.",
            "variants": [dict(v) for v in variants],
            "bad": next(v["name"] for v in variants if v["role"] == "bad"),
            "knob": {
                "name": "n",
                "label": "rows per page",
                "unit": "rows",
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
            "expectation": {"metric": "p50", "knob": expectation_knob, "min_ratio": min_ratio},
            "verification": {
                "passed": True,
                "checks": [
                    {
                        "name": "same body",
                        "knob": knobs[-1],
                        "variant": "join",
                        "passed": True,
                        "detail": "bodies equal",
                    },
                ],
            },
            "trials": trials,
        }

    @staticmethod
    def run(pairs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "run_id": "20250101-120000-n_plus_one",
            "status": "complete",
            "started_at": "2025-01-01T12:00:00Z",
            "finished_at": "2025-01-01T12:10:00Z",
            "profile": "quick",
            "seed": RUN_SEED,
            "command": ["pairbench", "run", "n_plus_one", "--profile", "quick"],
            "metadata": {
                "pairbench_version": "0.1.0",
                "python": "3.11.9",
                "machine": {"cpu_model": "Test CPU 9000", "cores": 2, "platform": "Linux"},
                "postgres": {"version": "18.0", "source": "embedded"},
            },
            "pairs": pairs,
        }

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
def n_plus_one_run() -> dict[str, Any]:
    """A complete synthetic run: one pair, three variants, three knob values, four rounds."""
    return Synth.run({"n_plus_one": Synth.pair(Synth.sweep())})


@pytest.fixture
def run_dir(tmp_path: Path, n_plus_one_run: dict[str, Any]) -> Path:
    folder = tmp_path / n_plus_one_run["run_id"]
    Synth.write(folder, n_plus_one_run)
    return folder
