"""compression: the same JSON from every variant once decoded; bytes on the wire and CPU differ."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from pairbench.targets.pairs.compression import (
    MAX_ITEMS,
    THRESHOLD_BYTES,
    accepts_gzip,
    document,
    pair,
)

from .counting import get_counting

VARIANTS = list(pair.variants)
ITEMS = 800  # the scenario's body
GZIP = {"Accept-Encoding": "gzip"}
CPU_ITEMS = 3_000  # a body large enough that compressing it costs tens of milliseconds
CPU_REQUESTS = 4


def _raw(target: httpx.Client, path: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (httpx would undo the Content-Encoding)."""
    with target.stream("GET", path, headers=headers) as response:
        return response, b"".join(response.iter_raw())


def test_variants_worst_to_best() -> None:
    assert [(v.name, v.role) for v in pair.variants.values()] == [
        ("identity", "bad"),
        ("gzip_every", "middle"),
        ("gzip_threshold", "good"),
    ]


@pytest.mark.parametrize("items", [1, ITEMS])
def test_the_same_json_once_decoded(target: httpx.Client, items: int) -> None:
    replies = {v: _raw(target, f"{pair.path(v)}?items={items}", GZIP) for v in VARIANTS}
    assert all(r.status_code == 200 for r, _ in replies.values()), replies
    decoded = {}
    for variant, (reply, raw) in replies.items():
        gzipped = reply.headers.get("content-encoding") == "gzip"
        decoded[variant] = json.loads(gzip.decompress(raw) if gzipped else raw)
        assert reply.headers["vary"] == "Accept-Encoding", variant
    assert all(body == decoded["identity"] for body in decoded.values())
    assert [p["id"] for p in decoded["identity"]] == list(range(1, items + 1))
    # Deterministic from the module's seed, not from a run's: the same bytes every time.
    assert json.dumps(decoded["identity"], separators=(",", ":")).encode() == document(items)


def test_bytes_on_the_wire_are_counted_compressed(target: httpx.Client) -> None:
    sent = {}
    for variant in VARIANTS:
        response, counters = get_counting(target, f"{pair.path(variant)}?items={ITEMS}", GZIP)
        assert response.status_code == 200, variant
        sent[variant] = counters["response_bytes"]
        assert sent[variant] == int(response.headers["content-length"]), variant
    # The scenario's [mechanism.response_bytes] and its comment quote these.
    assert sent == {"identity": 318_470, "gzip_every": 49_694, "gzip_threshold": 51_636}
    assert sent["identity"] / sent["gzip_threshold"] > 6


def test_compressing_costs_server_cpu(target: httpx.Client) -> None:
    """Level 9 costs more CPU than level 6, and both far more than sending the bytes as they are.

    Each variant's least CPU over its requests: the counter is the whole process's CPU time, so
    a request during which the collector ran a full collection (tens of ms in this process) or
    another thread woke is charged for it; the least is the request's own cost (in CI the mean
    once charged `identity` 6.5 ms a request, against about 0.2 ms)."""
    cpu = {}
    for variant in VARIANTS:
        target.get(f"{pair.path(variant)}?items={CPU_ITEMS}", headers=GZIP)  # the body cached
        spent = []
        for _ in range(CPU_REQUESTS):
            _, counters = get_counting(target, f"{pair.path(variant)}?items={CPU_ITEMS}", GZIP)
            spent.append(counters["cpu_seconds"])
        cpu[variant] = min(spent)
    assert cpu["gzip_every"] > 1.2 * cpu["gzip_threshold"], cpu
    assert cpu["gzip_threshold"] > 5 * cpu["identity"], cpu


def test_a_body_below_the_threshold_is_sent_as_it_is(target: httpx.Client) -> None:
    assert len(document(1)) < THRESHOLD_BYTES
    every = target.get(f"{pair.path('gzip_every')}?items=1", headers=GZIP)
    threshold = target.get(f"{pair.path('gzip_threshold')}?items=1", headers=GZIP)
    assert every.headers["content-encoding"] == "gzip"  # level 9 even for one small product
    assert "content-encoding" not in threshold.headers
    assert every.json() == threshold.json()


@pytest.mark.parametrize("accept", ["identity", "gzip;q=0", "br"])
def test_a_client_that_refuses_gzip_gets_the_json_as_it_is(
    target: httpx.Client, accept: str
) -> None:
    for variant in VARIANTS:
        reply, raw = _raw(target, f"{pair.path(variant)}?items=10", {"Accept-Encoding": accept})
        assert "content-encoding" not in reply.headers, (variant, accept)
        assert raw == document(10)


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("gzip;q=nonsense", False),
        ("deflate", False),
        ("", False),
    ],
)
def test_accept_encoding_is_read_as_rfc_9110_says(header: str, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


@pytest.mark.parametrize("query", ["", "items=0", f"items={MAX_ITEMS + 1}", "items=ten"])
def test_out_of_bounds_is_422(target: httpx.Client, query: str) -> None:
    for variant in VARIANTS:
        assert target.get(f"{pair.path(variant)}?{query}").status_code == 422, (variant, query)
