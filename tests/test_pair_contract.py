"""The pair contract (docs/architecture.md), checked once for every registered pair.

Per-pair test files keep only what is specific to their pattern; everything every pair must do
is here: variants bad first with docstring labels, every parameter bounded, sizes for every
profile that cover what the generators read, deterministic seeding, the describe document's
exact keys, and nothing of a pair outside its own files.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from pairbench.targets.data import PROFILES
from pairbench.targets.registry import ROLE_ORDER, Pair, Variant, catalogue, document, load_pairs
from pairbench.targets.seeding import seed

PAIRS = load_pairs()
HUGE = 10**30  # beyond any sane bound, and beyond a 64-bit integer
REQUEST_TIMEOUT_S = 10.0  # a bounded parameter answers at once; a hang is a failure
CHECKSUM_SQL = "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} AS t"
REPO = Path(__file__).resolve().parent.parent

DOCUMENT_KEYS = {"pairbench", "counters", "pairs"}
COUNTER_KEYS = {"metric", "labels", "label", "unit", "kind", "per", "scale"}
PAIR_KEYS = {
    "name",
    "title",
    "summary",
    "knob",
    "variants",
    "routes",
    "tables",
    "sizes",
    "counters",
    "equivalence",
    "reset",
    "state",
    "server",
    "reference",
}
KNOB_KEYS = {"name", "label", "unit", "log_scale"}
VARIANT_KEYS = {"name", "role", "label", "path", "method"}
REFERENCE_KEYS = {"figure", "ratio", "source", "url", "knob"}

pairs = pytest.mark.parametrize("pair", PAIRS.values(), ids=PAIRS.keys())
VARIANTS = [(p, v) for p in PAIRS.values() for v in p.variants.values()]
variants = pytest.mark.parametrize(
    ("pair", "variant"), VARIANTS, ids=[f"{p.name}.{v.name}" for p, v in VARIANTS]
)


@pairs
def test_variants_run_bad_then_middle_then_good(pair: Pair) -> None:
    roles = [v.role for v in pair.variants.values()]
    assert roles[0] == "bad" and "good" in roles
    assert roles == sorted(roles, key=ROLE_ORDER.__getitem__)
    assert pair.bad is next(iter(pair.variants.values()))


@variants
def test_label_is_the_docstrings_first_line(pair: Pair, variant: Variant) -> None:
    doc = variant.handler.__doc__
    assert doc, f"{pair.name}.{variant.name} has no docstring"
    assert variant.label == doc.strip().splitlines()[0]
    assert not variant.label.startswith(variant.name)


def _parameters(openapi: dict[str, Any], path: str, method: str) -> list[dict[str, Any]]:
    operation = openapi["paths"][path][method.lower()]
    params: list[dict[str, Any]] = operation.get("parameters", [])
    return [p for p in params if p["in"] == "query"]


def _valid(param: dict[str, Any]) -> str:
    schema = param["schema"]
    if "default" in schema and schema["default"] is not None:
        return str(schema["default"])
    return str(schema.get("minimum", 1))


def _schema(param: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = param["schema"]
    # Optional[...] comes out as anyOf [the type, null]: the bounds are on the type.
    return next((s for s in schema.get("anyOf", []) if s.get("type") != "null"), schema)


@variants
def test_every_parameter_is_bounded(target: httpx.Client, pair: Pair, variant: Variant) -> None:
    openapi = target.get("/openapi.json").json()
    params = _parameters(openapi, pair.path(variant.name), variant.method)
    for param in params:
        schema = _schema(param)
        others = {p["name"]: _valid(p) for p in params if p is not param and p["required"]}
        if schema.get("type") in ("integer", "number"):
            assert "maximum" in schema and "minimum" in schema, f"{param['name']} is unbounded"
            bad_values = [str(HUGE), "-1"]
        elif schema.get("type") == "string":
            assert "maxLength" in schema, f"{param['name']} is unbounded"
            bad_values = ["A" * (schema["maxLength"] + 1)]
        else:
            pytest.fail(f"{param['name']}: a {schema.get('type')} parameter cannot be bounded")
        for value in bad_values:
            response = target.request(
                variant.method,
                pair.path(variant.name),
                params={**others, param["name"]: value},
                timeout=REQUEST_TIMEOUT_S,
            )
            assert response.status_code == 422, (param["name"], value[:20], response.text[:200])


@pairs
def test_sizes_exist_for_every_profile(pair: Pair) -> None:
    if not pair.tables:
        return
    assert pair.sizes is not None and set(pair.sizes) == set(PROFILES)
    assert all(pair.sizes[p] for p in PROFILES)


def _checksums(dsn: str, pair: Pair) -> dict[str, tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        out = {}
        for table in pair.tables:
            count = conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()
            checksum = conn.execute(CHECKSUM_SQL.format(table=table.name)).fetchone()
            assert count is not None and checksum is not None
            out[table.name] = (int(count[0]), str(checksum[0]))
        return out


@pairs
def test_seeding_is_complete_and_deterministic(
    pair: Pair, fresh_database: Callable[[str], str]
) -> None:
    if not pair.tables:
        return
    a, b = fresh_database(f"contract_{pair.name}_a"), fresh_database(f"contract_{pair.name}_b")
    (first,) = asyncio.run(seed(a, "test", [pair.name]))
    (second,) = asyncio.run(seed(b, "test", [pair.name]))
    assert not first.skipped and not second.skipped
    assert first.identity == second.identity
    assert first.rows == second.rows and all(first.rows.values()), first.rows
    assert _checksums(a, pair) == _checksums(b, pair)
    (again,) = asyncio.run(seed(a, "test", [pair.name]))
    assert again.skipped and again.rows == first.rows


def test_the_document_has_exactly_the_documented_keys() -> None:
    doc = document(PAIRS)
    assert set(doc) == DOCUMENT_KEYS
    for name, counter in doc["counters"].items():
        assert set(counter) == COUNTER_KEYS, name
        assert counter["kind"] in ("delta", "peak")
        per = counter["per"]
        assert per in ("request", "trial") or all(p in doc["counters"] for p in per), name
    for entry in doc["pairs"]:
        assert set(entry) == PAIR_KEYS, entry["name"]
        assert set(entry["knob"]) == KNOB_KEYS
        assert all(set(v) == VARIANT_KEYS for v in entry["variants"])
        assert all(set(r) == {"path", "methods"} for r in entry["routes"])
        assert set(entry["sizes"]) == set(PROFILES)
        assert set(entry["equivalence"]) == {"rule"}
        assert set(entry["server"]) == {"postgres", "downstream", "worker", "one_process"}
        assert isinstance(entry["server"]["downstream"], bool)
        assert isinstance(entry["server"]["worker"], bool)
        assert set(entry["server"]["postgres"]) == {"max_connections"}
        assert entry["reference"] is None or set(entry["reference"]) == REFERENCE_KEYS


@pairs
def test_every_counter_a_pair_names_is_in_the_catalogue(pair: Pair) -> None:
    assert pair.counters, f"{pair.name} names no counter for its lesson"
    assert set(pair.counters) <= set(catalogue(PAIRS))


def _allowed(path: str, pair: Pair) -> bool:
    return (
        path.startswith(("targets/pairs/", "scenarios/", "tests/fixtures/", "docs/"))
        or path == "README.md"
        or path == f"tests/targets/pairs/test_{pair.name}.py"
        or path == "tests/test_pair_contract.py"
    )


def _mentions(pair: Pair) -> re.Pattern[str]:
    """A pair's name or a table's name used as one: quoted, in a path, a module or SQL.

    Plain words are not mentions: "pool", "cache" and "orders" are ordinary English, and a
    comment about the app's connection pool is not about the pool pair.
    """
    name = re.escape(pair.name)
    tables = "|".join(re.escape(t.name) for t in pair.tables) or r"(?!)"
    return re.compile(
        rf"""["'/]{name}["'/?]|\b{name}\.toml\b|\bpairs\.{name}\b"""
        rf"""|["']({tables})["']|\b(?i:from|join|into|update|table)\s+({tables})\b"""
    )


@pairs
def test_nothing_of_a_pair_lives_outside_its_own_files(pair: Pair) -> None:
    files = subprocess.run(
        ["git", "ls-files", "*.py", "*.toml", "*.md"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    pattern = _mentions(pair)
    hits = []
    for path in files:
        if _allowed(path, pair):
            continue
        text = (REPO / path).read_text(errors="replace")
        hits += [f"{path}: {m.group(0)}" for m in pattern.finditer(text)]
    assert hits == []
