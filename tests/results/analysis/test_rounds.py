"""Per-round values: latency metrics in ms and throughput, of the variant or its bystander."""

from __future__ import annotations

from typing import Any

import pytest

from pairbench.results.analysis.rounds import BYSTANDER, THROUGHPUT, per_round


def test_per_round_latency_throughput_and_bystander(synth: Any) -> None:
    trials = [
        synth.trial(1, 0, "a", [2000] * 100, elapsed_s=2.0, bystander_us=[300] * 10),
        synth.trial(1, 1, "a", [4000] * 100, elapsed_s=4.0, bystander_us=[600] * 10),
        synth.trial(1, 2, "a", [], elapsed_s=1.0),  # nothing succeeded: no latency, no rate
    ]
    p50 = per_round(trials, "p50")
    assert list(p50) == [0, 1]
    assert p50[0] == pytest.approx(2.0, rel=1e-3) and p50[1] == pytest.approx(4.0, rel=1e-3)
    assert per_round(trials, THROUGHPUT) == {0: 50.0, 1: 25.0}
    bystander = per_round(trials, "p99", BYSTANDER)
    assert bystander == pytest.approx({0: 0.3, 1: 0.6}, rel=1e-3)
    assert per_round(trials, THROUGHPUT, BYSTANDER) == {0: 5.0, 1: 2.5}
