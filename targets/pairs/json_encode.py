"""JSON serialization: FastAPI's encoder path vs pre-serialized bytes.

A list endpoint returns `rows` product rows. How the rows become JSON is the only difference
between the variants: the same query, the same rows, the same parsed body.

- `encoder`: `jsonable_encoder` walks every value in Python and builds a new tree of dicts and
  lists, which `json.dumps` then writes: what FastAPI did with every response before its
  pydantic fast path, and what a handler returning `JSONResponse(jsonable_encoder(...))` (a
  common way to "take control" of the response) still does.
- `response_model`: FastAPI's default path today: the return annotation is the response model,
  FastAPI validates the rows against it (model instances, in pydantic's Rust core) and, in
  current FastAPI (0.165 here), writes the JSON with pydantic's serializer, not `json.dumps`.
- `dump_json`: pydantic's `TypeAdapter.dump_json` on the rows as they are (no validation), bytes
  returned as they are.
- `orjson`: `orjson.dumps` on the rows, bytes returned as they are.

Published end-to-end figures for this swap are close to 1x, while serializer micro-benchmarks
claim about 10x: the pair's micro cores measure the serializers alone, beside the end-to-end
figure, so the two levels can be read side by side (docs/architecture.md, "The micro suite").
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, WithJsonSchema
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from ..data import WORDS, Size, title
from ..deps import Pool
from ..openapi import Body
from ..registry import Knob, MicroServers, Pair, Reference

MAX_ROWS = 10_000  # bounded: rows per response is user input, and no profile seeds more
TAGS_PER_ROW = (0, 4)


NAIVE_UTC_TIMESTAMP = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$",
    "description": "UTC, ISO 8601 to the second, without an offset",
}


class Row(Body):
    """A product row as the list returns it."""

    id: int
    sku: str
    name: str
    description: str
    price_cents: int
    rating: float
    in_stock: bool
    tags: list[str]
    # Naive, in UTC: an aware datetime is written "...Z" by pydantic and "...+00:00" by
    # jsonable_encoder and orjson, and the variants must send the same values. Declared as
    # what it is, a timestamp without an offset: JSON Schema's `date-time` (RFC 3339) requires
    # one, and the schema fuzz test checks every response against the declaration.
    updated_at: Annotated[datetime, WithJsonSchema(NAIVE_UTC_TIMESTAMP)]


class RowDict(TypedDict):
    """The same row as the dict asyncpg's record becomes: dump_json's input, not validated."""

    id: int
    sku: str
    name: str
    description: str
    price_cents: int
    rating: float
    in_stock: bool
    tags: list[str]
    updated_at: datetime


# Typed Any: dump_json is given asyncpg's dicts as they are, never validated into RowDicts.
ROWS_ADAPTER: TypeAdapter[Any] = TypeAdapter(list[RowDict])

pair = Pair(
    name="json_encode",
    title="jsonable_encoder vs pre-serialized JSON",
    summary="A list of rows: FastAPI's encoder path vs pydantic's or orjson's bytes.",
    knob=Knob("rows", "rows per response", "rows"),
    sizes={
        "test": {"rows": 2_000},
        "quick": {"rows": MAX_ROWS},
        "standard": {"rows": MAX_ROWS},
        "talk": {"rows": MAX_ROWS},
    },
    # Every variant runs the same one query and sends the same bytes: the difference is CPU in
    # the serializer, which the micro cores measure alone.
    counters=["queries", "response_bytes"],
    body=list[Row],
    reference=Reference(
        figure="0.99x end to end (orjson vs the default JSON response, one FastAPI suite);"
        " about 10x for dumps alone (orjson's own micro-benchmarks)",
        source="issue 14's survey of published FastAPI benchmarks",
        ratio=0.99,
    ),
)

ROWS_SQL = (
    "SELECT id, sku, name, description, price_cents, rating, in_stock, tags, updated_at"
    " FROM json_rows ORDER BY id LIMIT $1"
)

RowCount = Annotated[int, Query(ge=1, le=MAX_ROWS, description="rows to return")]


async def _fetch(pool: asyncpg.Pool, rows: int) -> list[dict[str, Any]]:
    """The rows as plain dicts, one query; the same input for every serializer."""
    async with pool.acquire() as conn:
        records = await conn.fetch(ROWS_SQL, rows)
    return [dict(r) for r in records]


@pair.variant("bad")
async def encoder(pool: Pool, rows: RowCount) -> JSONResponse:
    """jsonable_encoder then json.dumps: every value walked and copied in Python."""
    return JSONResponse(jsonable_encoder(await _fetch(pool, rows)))


@pair.variant("middle")
async def response_model(pool: Pool, rows: RowCount) -> list[Row]:
    """FastAPI's default: a response model, rows validated, then written by pydantic."""
    # FastAPI validates these dicts against list[Row] (the annotation) and serializes them.
    return await _fetch(pool, rows)  # type: ignore[return-value]


@pair.variant("good")
async def dump_json(pool: Pool, rows: RowCount) -> Response:
    """pydantic's TypeAdapter.dump_json: bytes from pydantic's Rust core, no validation."""
    return Response(ROWS_ADAPTER.dump_json(await _fetch(pool, rows)), media_type=JSON)


@pair.variant("good")
async def orjson_bytes(pool: Pool, rows: RowCount) -> Response:
    """orjson.dumps: bytes from orjson, no validation."""
    return Response(orjson.dumps(await _fetch(pool, rows)), media_type=JSON)


JSON = "application/json"


# Seed data: product rows with the usual mix of types (numbers, text, a float, a flag, a short
# list of tags, a timestamp), about 300 bytes of JSON each.
TABLE = "json_rows"
START = datetime(2025, 1, 1)
YEAR_S = 365 * 24 * 3600


@pair.table(
    TABLE,
    """CREATE TABLE json_rows (
        id          bigint    PRIMARY KEY,
        sku         text      NOT NULL,
        name        text      NOT NULL,
        description text      NOT NULL,
        price_cents integer   NOT NULL,
        rating      float8    NOT NULL,
        in_stock    boolean   NOT NULL,
        tags        text[]    NOT NULL,
        updated_at  timestamp NOT NULL
    )""",
)
def _json_rows(
    size: Size, rng: random.Random
) -> Iterator[tuple[int, str, str, str, int, float, bool, list[str], datetime]]:
    for row_id in range(1, size["rows"] + 1):
        yield (
            row_id,
            f"{rng.choice(WORDS).upper()}-{row_id:06d}",
            title(rng),
            " ".join(rng.choices(WORDS, k=rng.randint(8, 16))),
            rng.randint(100, 100_000),
            rng.randint(10, 50) / 10,  # one decimal: every serializer writes it alike
            rng.random() < 0.8,
            rng.sample(WORDS, rng.randint(*TAGS_PER_ROW)),
            START + timedelta(seconds=rng.randrange(YEAR_S)),
        )


# The micro benchmark (docs/architecture.md, "The micro suite"): the serializers alone, on rows
# fetched once by the setup, so no query or HTTP is in the figure: the level at which serializer
# benchmarks are published. Every core returns the body's bytes.
MICRO_ROWS = 1_000


@pair.micro_setup
@contextlib.asynccontextmanager
async def _micro_rows(on: MicroServers) -> AsyncIterator[list[dict[str, Any]]]:
    yield await _fetch(on.pool, MICRO_ROWS)


@pair.micro("encoder", knob=MICRO_ROWS)
async def _micro_encoder(on: MicroServers) -> bytes:
    return bytes(JSONResponse(jsonable_encoder(on.resource)).body)


@pair.micro("dump_json", knob=MICRO_ROWS)
async def _micro_dump_json(on: MicroServers) -> bytes:
    return ROWS_ADAPTER.dump_json(on.resource)


@pair.micro("orjson_bytes", knob=MICRO_ROWS)
async def _micro_orjson(on: MicroServers) -> bytes:
    return orjson.dumps(on.resource)


pair.exercise(
    reference="orjson_bytes",
    task="""Return the same list as `encoder` (the first `rows` rows of `json_rows` by id, every
    column), but write the JSON without jsonable_encoder's walk in Python: serialize the rows
    to bytes with orjson (installed) or pydantic, and return them in a Response with
    media_type="application/json".""",
    knob=1_000,
    min_ratio=1.5,
)
