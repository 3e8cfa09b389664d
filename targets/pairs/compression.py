"""Response compression: none vs gzip level 9 on everything vs gzip level 6 above a threshold.

A list endpoint returns `items` product records as JSON, hundreds of KB at the scenario's size.
The client sends `Accept-Encoding: gzip`; the variants differ only in what they do with it:

- `identity`: ignore it and send the JSON as it is: no CPU spent, every byte on the wire.
- `gzip_every`: gzip at level 9 on every response, whatever its size: the level Starlette's
  `GZipMiddleware` uses unless told otherwise (`compresslevel=9`). On this body level 9 sends
  4% fewer bytes than level 6 for about twice its CPU (12 against 7 ms a request here).
- `gzip_threshold`: gzip at level 6 (zlib's default), and only above THRESHOLD_BYTES: a body
  that fits in one packet gains nothing from compressing, and still pays the CPU and the
  header.

Whether compressing pays depends on the link, so the knob is the client link's bandwidth
(`knob_sets = "client_mbit"`: docs/architecture.md, "The link emulator"): on an unlimited link
(loopback) compression only costs CPU; on a slow one a body's transfer time shrinks by about
the compression ratio, which dwarfs the CPU it took.

The body is built once per size, deterministically from BODY_SEED (not from PostgreSQL, and
not from the run's seed): the lesson is bytes against CPU, and a query or a serializer in
every request would add the same time to every variant and hide it; a fixed body also sends
the same bytes on every run, so the scenario's mechanism checks the bytes on the wire exactly.
Each body is gzipped with mtime 0, so the same input gives the same bytes.

No brotli variant: on this body brotli at quality 5 took 3.3 ms for 5.9x against gzip level
6's 5.8 ms for 6.2x (the scenario's 800 products, twice, medians of 7): at 10 Mbit/s the two
would differ by a few milliseconds in 50, not worth a quarter more of the quick run's time.
Its library default, quality 11, took 300 ms for 7.6x: level 9's mistake, tenfold.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import random
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Header, Query, Response

from ..data import WORDS, person, title
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference, Shows

MAX_ITEMS = 5_000  # bounded: the body's size is user input (about 1.5 MB at most)
BODY_SEED = 14  # the body's fixed seed: the same bytes on every run, whatever --seed says
EVERY_LEVEL = 9  # Starlette's GZipMiddleware default compresslevel
THRESHOLD_LEVEL = 6  # zlib's default: most of level 9's ratio for a fraction of its CPU
# Below this a body is sent as it is: it fits in one 1,500-byte packet either way.
THRESHOLD_BYTES = 1_400
JSON = "application/json"
CATEGORIES = ("garden", "kitchen", "office", "outdoor", "lighting", "storage", "tools", "toys")
CURRENCY = "EUR"
START = datetime(2025, 1, 1)
YEAR_S = 365 * 24 * 3600


class Seller(Body):
    id: int
    name: str


class Product(Body):
    """A product record as a catalogue API lists it."""

    id: int
    sku: str
    name: str
    description: str
    category: str
    price_cents: int
    currency: str
    rating: float
    reviews: int
    in_stock: bool
    tags: list[str]
    seller: Seller
    updated_at: str


pair = Pair(
    name="compression",
    title="No compression vs gzip 9 on everything vs gzip 6 above a threshold",
    summary="Hundreds of KB of JSON across a client link: bytes on the wire against server CPU.",
    knob=Knob("client_mbit", "client link bandwidth (100000: unlimited)", "Mbit/s"),
    # Bytes on the wire per request (counted after encoding: targets/wire.py) and the server's
    # CPU per request: what compressing trades.
    counters=["response_bytes", "cpu_seconds"],
    equivalence="decoded",
    body=list[Product],
    # A size ratio, not a latency one (ratio=None): real API JSON compresses better than this
    # pair's body (6.2x at level 6), so a slow link would favour compression more still.
    reference=Reference(
        figure="twitter.json, 617 KB of real API JSON: 51 KB gzipped at the default level"
        " (12x smaller); the benefit falls as bandwidth rises",
        source="Daniel Lemire, Compressing JSON: gzip vs zstd (2021)",
        url="https://lemire.me/blog/2021/06/30/compressing-json-gzip-vs-zstd/",
    ),
)

ItemCount = Annotated[int, Query(ge=1, le=MAX_ITEMS, description="products in the list")]
AcceptEncoding = Annotated[str, Header(max_length=1_000)]


@pair.variant("bad")
async def identity(items: ItemCount, accept_encoding: AcceptEncoding = "") -> Response:
    """No compression: every byte of the JSON on the wire."""
    return Response(document(items), media_type=JSON, headers={"Vary": "Accept-Encoding"})


@pair.variant("middle")
async def gzip_every(items: ItemCount, accept_encoding: AcceptEncoding = "") -> Response:
    """gzip level 9 on every response (GZipMiddleware's default level), whatever its size."""
    body = document(items)
    if not accepts_gzip(accept_encoding):
        return Response(body, media_type=JSON, headers={"Vary": "Accept-Encoding"})
    return _gzipped(gzip.compress(body, compresslevel=EVERY_LEVEL, mtime=0))


@pair.variant("good")
async def gzip_threshold(items: ItemCount, accept_encoding: AcceptEncoding = "") -> Response:
    """gzip level 6 above 1,400 bytes: most of level 9's ratio for a fraction of its CPU."""
    body = document(items)
    if len(body) < THRESHOLD_BYTES or not accepts_gzip(accept_encoding):
        return Response(body, media_type=JSON, headers={"Vary": "Accept-Encoding"})
    return _gzipped(gzip.compress(body, compresslevel=THRESHOLD_LEVEL, mtime=0))


def _gzipped(body: bytes) -> Response:
    headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    return Response(body, media_type=JSON, headers=headers)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (`gzip`, `*`, not with `q=0`)."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.replace(" ", "").lower().removeprefix("q=")
        try:
            return not params or float(q) > 0
        except ValueError:
            return False
    return False


@functools.lru_cache(maxsize=8)
def document(items: int) -> bytes:
    """The list of `items` products as JSON bytes: built once per size, the same on every run."""
    rng = random.Random(BODY_SEED)
    sellers = [{"id": i, "name": person(rng)} for i in range(1, 41)]
    products = []
    for product_id in range(1, items + 1):
        products.append(
            {
                "id": product_id,
                "sku": f"{rng.choice(WORDS).upper()}-{product_id:06d}",
                "name": title(rng),
                "description": " ".join(rng.choices(WORDS, k=rng.randint(12, 24))).capitalize()
                + ".",
                "category": rng.choice(CATEGORIES),
                "price_cents": rng.randint(199, 99_999),
                "currency": CURRENCY,
                "rating": rng.randint(10, 50) / 10,
                "reviews": rng.randint(0, 5_000),
                "in_stock": rng.random() < 0.8,
                "tags": rng.sample(WORDS, rng.randint(0, 4)),
                "seller": rng.choice(sellers),
                "updated_at": (START + timedelta(seconds=rng.randrange(YEAR_S))).isoformat(),
            }
        )
    return json.dumps(products, separators=(",", ":")).encode()


# The micro benchmark (docs/architecture.md, "The micro suite"): one body of MICRO_ITEMS
# products encoded as each variant sends it and decoded as the client reads it, no HTTP: the
# CPU the variants trade for bytes (decoding gzip costs a fraction of encoding it). Every core
# returns the JSON the client ends up with. The knob is the link, no property of one call.
MICRO_ITEMS = 1_500


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_body(on: MicroServers) -> AsyncIterator[bytes]:
    yield document(MICRO_ITEMS)


@pair.micro("identity", knob=None)
async def _micro_identity(on: MicroServers) -> bytes:
    body: bytes = on.resource
    return body


@pair.micro("gzip_every", knob=None)
async def _micro_gzip_every(on: MicroServers) -> bytes:
    return gzip.decompress(gzip.compress(on.resource, compresslevel=EVERY_LEVEL, mtime=0))


@pair.micro("gzip_threshold", knob=None)
async def _micro_gzip_threshold(on: MicroServers) -> bytes:
    return gzip.decompress(gzip.compress(on.resource, compresslevel=THRESHOLD_LEVEL, mtime=0))


pair.exercise(
    reference="gzip_threshold",
    task="""Return the same JSON as `identity` (the bytes of `document(items)`), but compressed
    with gzip when the client accepts it (`accepts_gzip(accept_encoding)`) and the body is
    larger than one packet (THRESHOLD_BYTES): send the compressed bytes in a Response with
    media_type="application/json" and the header Content-Encoding: gzip. Choose a level that
    keeps most of the ratio without level 9's CPU.""",
    knob=10,
    min_ratio=2.0,
    shows=[
        Shows(
            "response_bytes",
            "the body still crosses the link uncompressed: gzip it when the client accepts gzip",
            at_most=100_000,
        )
    ],
)
