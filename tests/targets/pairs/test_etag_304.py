"""etag_304: every variant sends the same document; a 304 by version touches neither PostgreSQL
nor the serializer, a 304 by hash still does both; a write makes the next request a 200."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from pairbench.harness import catalogue, scenario, services, verify
from pairbench.scenarios import SCENARIO_DIR
from pairbench.targets.pairs.etag_304 import MAX_ITEMS, MAX_PRICE_CENTS, MICRO_ITEMS, pair
from pairbench.targets.registry import MICRO_REDIS_DATABASE, MicroServers

from .counting import get_counting

VARIANTS = list(pair.variants)
REVALIDATING = ["hashed", "versioned"]
TEST_ITEMS = 1_000  # the test profile's


@pytest.fixture
def restored(target: httpx.Client) -> Iterator[httpx.Client]:
    """The target, with the seeded prices back after the test (its writes undone)."""
    yield target
    assert target.post(pair.reset_path or "").status_code == 200


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role) for v in pair.variants.values()] == [
        ("always_200", "bad"),
        ("hashed", "middle"),
        ("versioned", "good"),
    ]


@pytest.mark.parametrize("items,returned", [(1, 1), (100, 100), (MAX_ITEMS, TEST_ITEMS)])
def test_same_document_from_every_variant(target: httpx.Client, items: int, returned: int) -> None:
    replies = {v: target.get(f"{pair.path(v)}?items={items}") for v in VARIANTS}
    assert all(r.status_code == 200 for r in replies.values())
    bodies = {v: r.content for v, r in replies.items()}
    assert len(set(bodies.values())) == 1, {v: len(b) for v, b in bodies.items()}
    ids = [item["id"] for item in replies["always_200"].json()["items"]]
    assert ids == list(range(1, returned + 1))
    assert "etag" not in replies["always_200"].headers
    assert all(replies[v].headers["etag"].startswith('"') for v in REVALIDATING)


@pytest.mark.parametrize("items", [10, 1_000])
def test_a_304_by_version_skips_the_query_and_the_serializer(
    target: httpx.Client, items: int
) -> None:
    path = f"?items={items}"
    full = len(target.get(pair.path("always_200") + path).content)
    seen = {}
    for variant in VARIANTS:
        etag = target.get(pair.path(variant) + path).headers.get("etag", '"none"')
        response, counters = get_counting(
            target, pair.path(variant) + path, {"If-None-Match": etag}
        )
        seen[variant] = (response.status_code, counters)
        if variant == "always_200":
            assert response.status_code == 200 and len(response.content) == full
        else:
            assert response.status_code == 304 and response.content == b""
            assert response.headers["etag"] == etag
    queries = {v: c["queries"] for v, (_, c) in seen.items()}
    serialized = {v: c["serialized"] for v, (_, c) in seen.items()}
    sent = {v: c["response_bytes"] for v, (_, c) in seen.items()}
    assert queries == {"always_200": 1, "hashed": 1, "versioned": 0}
    assert serialized == {"always_200": 1, "hashed": 1, "versioned": 0}
    assert {v: c["not_modified"] for v, (_, c) in seen.items()} == {
        "always_200": 0,
        "hashed": 1,
        "versioned": 1,
    }
    # The bytes on the wire: the whole document, or none at all for either kind of 304.
    assert sent == {"always_200": full, "hashed": 0, "versioned": 0}
    # The version costs one Redis round trip; the hash none.
    assert seen["versioned"][1]["redis_commands"] == 1
    assert seen["hashed"][1]["redis_commands"] == 0


@pytest.mark.parametrize("variant", REVALIDATING)
def test_a_write_makes_the_next_request_a_200_with_the_new_body(
    restored: httpx.Client, variant: str
) -> None:
    path = f"{pair.path(variant)}?items=5"
    before = restored.get(path)
    etag = before.headers["etag"]
    assert restored.get(path, headers={"If-None-Match": etag}).status_code == 304
    price = before.json()["items"][0]["price_cents"] % MAX_PRICE_CENTS + 1  # a new price
    written = restored.post(f"{pair.path('write')}?price_cents={price}")
    assert written.status_code == 200
    after = restored.get(path, headers={"If-None-Match": etag})
    assert after.status_code == 200
    assert after.headers["etag"] != etag
    assert after.json()["items"][0]["price_cents"] == price
    assert after.json()["items"][1:] == before.json()["items"][1:]
    assert after.content == restored.get(f"{pair.path('always_200')}?items=5").content
    # The new ETag revalidates again.
    again = restored.get(path, headers={"If-None-Match": after.headers["etag"]})
    assert again.status_code == 304


def test_the_reset_brings_the_seeded_document_back_under_a_new_version(
    target: httpx.Client, servers: services.Endpoints
) -> None:
    path = f"{pair.path('versioned')}?items=3"
    seeded = target.get(path)
    assert target.post(f"{pair.path('write')}?price_cents=7").status_code == 200
    assert target.post(pair.reset_path or "").json() == {"changed": 1}
    back = target.get(path)
    assert back.content == seeded.content
    # A version names a moment, never contents: the same body comes back under a new ETag.
    assert back.headers["etag"] != seeded.headers["etag"]
    assert target.post(pair.reset_path or "").json() == {"changed": 0}
    with psycopg.connect(servers.pg_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM etag_items WHERE price_cents <> seeded_price_cents"
        ).fetchone()
    assert row == (0,)


def test_the_etags_route_names_both_current_etags(target: httpx.Client) -> None:
    listed = target.get(f"{pair.path('etags')}?items=20").json()["etags"]
    for variant in REVALIDATING:
        etag = target.get(f"{pair.path(variant)}?items=20").headers["etag"]
        assert etag in listed.split(", ")
        # The list revalidates with every variant that revalidates at all.
        response = target.get(f"{pair.path(variant)}?items=20", headers={"If-None-Match": listed})
        assert response.status_code == 304 and response.headers["etag"] == etag


@pytest.mark.parametrize(
    "header,status",
    [("*", 304), ('"other"', 200), ("W/{etag}", 304), ('"other", {etag}', 304), ("", 200)],
)
def test_if_none_match_forms(target: httpx.Client, header: str, status: int) -> None:
    for variant in REVALIDATING:
        path = f"{pair.path(variant)}?items=4"
        etag = target.get(path).headers["etag"]
        response = target.get(path, headers={"If-None-Match": header.format(etag=etag)})
        assert response.status_code == status, (variant, header)


@pytest.mark.parametrize("query", ["", "items=0", f"items={MAX_ITEMS + 1}", "items=x"])
def test_out_of_bounds_is_422_without_a_query(target: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?{query}")
        assert response.status_code == 422, (variant, query)
        assert counters["queries"] == 0, (variant, query)


@pytest.mark.parametrize("query", ["", "price_cents=0", f"price_cents={MAX_PRICE_CENTS + 1}"])
def test_a_bad_write_is_422(target: httpx.Client, query: str) -> None:
    assert target.post(f"{pair.path('write')}?{query}").status_code == 422


def test_the_micro_cores(servers: services.Endpoints, target: httpx.Client) -> None:
    """Every core returns the document the client holds after revalidating: the served bytes;
    the client's copy was given the ETags the app serves."""
    redis_url = services.redis_database(servers.redis_url, MICRO_REDIS_DATABASE)

    async def run() -> tuple[dict[str, object], object]:
        async with (
            MicroServers.open(servers.pg_dsn, redis_url) as opened,
            pair.micro_servers(opened) as on,
        ):
            return {name: await m.core(on) for name, m in pair.micros.items()}, on.resource

    done, copy = asyncio.run(run())
    body = target.get(f"{pair.path('hashed')}?items={MICRO_ITEMS}")
    assert done == dict.fromkeys(pair.micros, body.content)
    assert copy.hashed == body.headers["etag"]  # type: ignore[attr-defined]
    # The micro suite's Redis database starts empty: version 0.
    assert copy.versioned == f'"v0-{MICRO_ITEMS}"'  # type: ignore[attr-defined]


def _verify(target: httpx.Client, tmp_path: Path, text: str) -> verify.Verification:
    """The pair's scenario (or `text` in its place) verified against the running target."""
    path = tmp_path / "etag_304.toml"
    path.write_text(text)
    spec = scenario.load_scenario(path)
    pair_info = catalogue.resolve(spec, catalogue.fetch(str(target.base_url)))
    return verify.verify_pair(target, pair_info, [10])


SCENARIO = (SCENARIO_DIR / "etag_304.toml").read_text()


def test_the_scenario_verifies_revalidations_it_sends_itself(
    target: httpx.Client, tmp_path: Path
) -> None:
    outcome = _verify(target, tmp_path, SCENARIO)
    assert outcome.passed, outcome.first_failure
    checks = {(c.name, c.variant): c for c in outcome.checks}
    # The 200 behind each 304 was fetched and compared; always_200's body compared alone.
    assert checks[("not_modified", "versioned")].passed
    assert checks[("not_modified", "hashed")].passed
    assert ("not_modified", "always_200") not in checks
    assert checks[("equal_body", "versioned")].passed


@pytest.mark.parametrize(
    "override,failed",
    [
        # The bad variant never revalidates: a scenario expecting its 304 fails on the status.
        ("[request.variants.always_200]\nstatus = 304\n", "status"),
        # A revalidating variant asked to answer 200 to its own ETag fails too.
        (
            "[request.variants.always_200]\nstatus = 200\n[request.variants.versioned]\n"
            "status = 200\n",
            "status",
        ),
    ],
)
def test_the_scenario_fails_when_a_status_is_wrong(
    target: httpx.Client, tmp_path: Path, override: str, failed: str
) -> None:
    text = SCENARIO.replace("[request.variants.always_200]\nstatus = 200\n", "") + override
    assert text != SCENARIO + override  # the scenario's own override was taken out
    outcome = _verify(target, tmp_path, text)
    assert not outcome.passed
    assert outcome.first_failure is not None and outcome.first_failure.name == failed
