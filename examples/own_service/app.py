"""A sample service of your own: one search answered two ways, for pairbench's own-service mode.

`/v1/search` lowercases and scans every product's name on every request; `/v2/search` looks
the word up in an index built once at start-up. Both return the same JSON: the ids of the
first `limit` products among the first `size` whose name contains the word `q`. Nothing here
knows pairbench: it is any FastAPI app.
"""

from __future__ import annotations

import bisect
import random
from typing import Annotated

from fastapi import FastAPI, Query

PRODUCTS = 200_000  # products in the catalogue (`size` searches the first ones)
SEED = 7  # the names are drawn with a fixed seed: every start serves the same catalogue
WORDS = ["red", "blue", "green", "steel", "oak", "lamp", "chair", "desk", "shelf", "rug"]
WORDS_A_NAME = 3
DEFAULT_LIMIT = 20

_rng = random.Random(SEED)
NAMES = [" ".join(_rng.choices(WORDS, k=WORDS_A_NAME)).title() for _ in range(PRODUCTS)]
# word -> the ids of the products whose name has it, increasing: built once, read by /v2.
INDEX: dict[str, list[int]] = {}
for product, name in enumerate(NAMES):
    for word in set(name.lower().split()):
        INDEX.setdefault(word, []).append(product)

app = FastAPI(title="sample search service")
Size = Annotated[int, Query(ge=1, le=PRODUCTS)]
Limit = Annotated[int, Query(ge=1, le=1000)]


@app.get("/v1/search")
def search_scan(q: str, size: Size, limit: Limit = DEFAULT_LIMIT) -> dict[str, object]:
    """Scan: every name lowercased and split on every request."""
    word = q.lower()
    hits = [i for i in range(size) if word in NAMES[i].lower().split()]
    return {"q": q, "total": len(hits), "ids": hits[:limit]}


@app.get("/v2/search")
def search_index(q: str, size: Size, limit: Limit = DEFAULT_LIMIT) -> dict[str, object]:
    """Index: the word's sorted ids, cut at `size` with a binary search."""
    ids = INDEX.get(q.lower(), [])
    end = bisect.bisect_left(ids, size)
    return {"q": q, "total": end, "ids": ids[: min(end, limit)]}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """For the example's start-up wait."""
    return {"status": "ok"}
