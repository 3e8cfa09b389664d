"""Each pair's core without HTTP, bad against good (docs/architecture.md, "The micro suite").

Parametrized over every registered pair that declares micro cores (`@pair.micro`), built-in or
from PAIRBENCH_PAIRS, so a pair added later is measured with no edit here. One pytest-benchmark
group per pair, so its table compares the pair's cores; `--benchmark-disable` runs each once as
a test (CI's short mode).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pairbench.targets.registry import Micro, Pair, load_pairs

if TYPE_CHECKING:  # the `micro` fixture's type; conftest is not importable under importlib
    from conftest import MicroSession

PAIRS = load_pairs()
CORES = [(pair, micro) for pair in PAIRS.values() for micro in pair.micros.values()]


@pytest.mark.parametrize(
    ("pair", "core"), CORES, ids=[f"{pair.name}-{micro.variant}" for pair, micro in CORES]
)
def test_micro(benchmark: Any, micro: MicroSession, pair: Pair, core: Micro) -> None:
    on = micro.servers_for(pair)
    variant = pair.variants[core.variant]
    benchmark.group = pair.name
    benchmark.extra_info.update(
        pair=pair.name,
        variant=variant.name,
        role=variant.role,
        label=variant.label,
        knob_name=pair.knob.name,
        knob=core.knob,
        profile=micro.profile,
    )
    result = benchmark(micro.run, core.core, on)
    assert result, f"{pair.name}.{variant.name}'s micro core returned {result!r}"
