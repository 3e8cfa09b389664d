"""A pair that breaks the contract fails at load time, naming the pair (and the profile)."""

from __future__ import annotations

from typing import Any

import pytest

from pairbench.targets.data import PROFILES, DatasetError
from pairbench.targets.registry import Knob, Pair, PairError, ServerNeeds, catalogue

SIZES = {profile: {"rows": 1} for profile in PROFILES}


def _pair(**kwargs: Any) -> Pair:
    pair = Pair(name="demo", title="t", summary="s", knob=Knob("n", "n", "n"), **kwargs)

    @pair.variant("bad")
    async def slow() -> None:
        """Slow."""

    @pair.variant("good")
    async def fast() -> None:
        """Fast."""

    return pair


def _with_table(pair: Pair) -> Pair:
    pair.table("demo_rows", "CREATE TABLE demo_rows (n integer)")(lambda size, rng: [])
    return pair


def test_a_well_formed_pair_passes() -> None:
    _with_table(_pair(sizes=SIZES)).check(catalogue({}))


def test_a_missing_profile_names_pair_and_profile() -> None:
    sizes = {p: v for p, v in SIZES.items() if p != "talk"}
    with pytest.raises(DatasetError, match="pair 'demo': no sizes for profile 'talk'"):
        _with_table(_pair(sizes=sizes)).check(catalogue({}))


def test_profiles_must_share_their_keys() -> None:
    sizes = {**SIZES, "quick": {"row": 1}}
    with pytest.raises(DatasetError, match="pair 'demo', profile 'quick'"):
        _with_table(_pair(sizes=sizes)).check(catalogue({}))


def test_a_missing_size_key_is_an_error_never_a_zero() -> None:
    sizes = _pair(sizes=SIZES).profile_sizes("standard")
    with pytest.raises(DatasetError, match="pair 'demo', profile 'standard': no size 'rowz'"):
        sizes["rowz"]


def test_good_before_bad_is_refused() -> None:
    pair = Pair(name="demo", title="t", summary="s", knob=Knob("n", "n", "n"))

    @pair.variant("good")
    async def fast() -> None:
        """Fast."""

    @pair.variant("bad")
    async def slow() -> None:
        """Slow."""

    with pytest.raises(PairError, match="bad first"):
        pair.check(catalogue({}))


def test_an_unknown_counter_or_equivalence_is_refused() -> None:
    with pytest.raises(PairError, match="unknown counter 'nope'"):
        _pair(counters=["nope"]).check(catalogue({}))
    with pytest.raises(PairError, match="unknown equivalence"):
        _pair(equivalence="roughly")  # type: ignore[arg-type]


def test_side_effect_needs_reset_and_state() -> None:
    with pytest.raises(PairError, match=r"needs @pair\.state and @pair\.reset"):
        _pair(equivalence="side_effect").check(catalogue({}))


def test_a_worker_needs_its_jobs_and_jobs_need_the_worker() -> None:
    with pytest.raises(
        PairError, match=r"ServerNeeds\(worker=True\) and @pair\.worker go together"
    ):
        _pair(server=ServerNeeds(worker=True)).check(catalogue({}))
    lone = _pair()

    @lone.worker
    async def jobs(settings: Any) -> None:
        """Never needed."""

    with pytest.raises(PairError, match="go together"):
        lone.check(catalogue({}))
    paired = _pair(server=ServerNeeds(worker=True))
    paired.worker(jobs)
    paired.check(catalogue({}))
    assert paired.describe()["server"]["worker"] is True


def test_a_counter_is_declared_once() -> None:
    first, second = _pair(), _pair()
    first.counter("demo_hits", "h", label="hits", unit="hits")
    second.counter("demo_hits", "h", label="hits", unit="hits")
    with pytest.raises(PairError, match="declared twice"):
        catalogue({"a": first, "b": second})
    with pytest.raises(PairError, match="already exists"):
        first.counter("queries", "q", label="q", unit="q")
