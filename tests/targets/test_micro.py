"""Every built-in pair declares its micro benchmark, and its cores agree (docs/architecture.md,
"The micro suite").

Like verification before a run: each core is run once on the session's servers (the `test`
profile) and must return what the pair's bad core returns. No pair is named: they come from
the registry, so a pair added later is checked too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pairbench.harness import downstream, services
from pairbench.targets.data import PROFILES
from pairbench.targets.registry import (
    MICRO_REDIS_DATABASE,
    Knob,
    MicroServers,
    Pair,
    PairError,
    catalogue,
    load_pairs,
)

PAIRS = load_pairs()
BUILT_IN = [p for p in PAIRS.values() if p.bad.handler.__module__.startswith("pairbench.targets.")]
built_in = pytest.mark.parametrize("pair", BUILT_IN, ids=[p.name for p in BUILT_IN])
WITH_CORES = [p for p in BUILT_IN if p.micros]
with_cores = pytest.mark.parametrize("pair", WITH_CORES, ids=[p.name for p in WITH_CORES])


@built_in
def test_every_built_in_pair_declares_a_bad_and_a_good_core(pair: Pair) -> None:
    if pair.no_micro_reason is not None:  # declared, with its reason: none to compare
        assert not pair.micros
        return
    roles = {pair.variants[v].role for v in pair.micros}
    assert {"bad", "good"} <= roles, f"{pair.name} has micro cores for {sorted(pair.micros)}"


async def _results(pair: Pair, servers: services.Endpoints) -> dict[str, Any]:
    redis_url = services.redis_database(servers.redis_url, MICRO_REDIS_DATABASE)
    async with (
        MicroServers.open(servers.pg_dsn, redis_url, PAIRS) as opened,
        pair.micro_servers(opened) as on,
    ):
        return {variant: await micro.core(on) for variant, micro in pair.micros.items()}


@with_cores
def test_every_core_returns_what_the_bad_core_returns(
    pair: Pair,
    servers: services.Endpoints,
    downstream_service: downstream.RunningDownstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in downstream_service.env().items():  # as the micro suite hands it over
        monkeypatch.setenv(name, value)
    results = asyncio.run(_results(pair, servers))
    bad = next(v for v in results if pair.variants[v].role == "bad")
    assert results[bad], f"{pair.name}.{bad}'s micro core returned {results[bad]!r}"
    for variant, result in results.items():
        assert result == results[bad], f"{pair.name}.{variant} differs from {bad}"


# The contract the registry checks at load time, on a pair of the test's own.

SIZES = {profile: {"rows": 1} for profile in PROFILES}


def _pair() -> Pair:
    pair = Pair(name="demo", title="t", summary="s", knob=Knob("n", "n", "n"))

    @pair.variant("bad")
    async def slow() -> None:
        """Slow."""

    @pair.variant("good")
    async def fast() -> None:
        """Fast."""

    return pair


async def _core(on: MicroServers) -> int:
    return 1


def test_cores_for_a_bad_and_a_good_variant_pass() -> None:
    pair = _pair()
    pair.micro("slow", knob=1)(_core)
    pair.micro("fast", knob=1)(_core)
    pair.check(catalogue({}))


def test_a_core_for_an_unknown_variant_is_refused() -> None:
    pair = _pair()
    pair.micro("slow", knob=1)(_core)
    pair.micro("fats", knob=1)(_core)
    with pytest.raises(
        PairError, match=r"pair 'demo': micro core for unknown variant\(s\) \['fats'\]"
    ):
        pair.check(catalogue({}))


def test_cores_without_a_good_variant_are_refused() -> None:
    pair = _pair()
    pair.micro("slow", knob=1)(_core)
    with pytest.raises(PairError, match="pair 'demo': micro cores need a bad and a good variant"):
        pair.check(catalogue({}))


def test_cores_at_different_knob_values_are_refused() -> None:
    pair = _pair()
    pair.micro("slow", knob=10)(_core)
    pair.micro("fast", knob=20)(_core)
    with pytest.raises(PairError, match="pair 'demo': micro cores run at different knob values"):
        pair.check(catalogue({}))


def test_a_core_registered_twice_is_refused() -> None:
    pair = _pair()
    pair.micro("slow", knob=1)(_core)
    with pytest.raises(PairError, match="pair 'demo': micro core for 'slow' registered twice"):
        pair.micro("slow", knob=1)(_core)


def test_a_setup_without_cores_is_refused() -> None:
    pair = _pair()
    pair.micro_setup(lambda on: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(
        PairError, match=r"pair 'demo': @pair\.micro_setup without any @pair\.micro"
    ):
        pair.check(catalogue({}))
