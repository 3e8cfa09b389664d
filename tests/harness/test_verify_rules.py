"""Verification by the pair's declared rule: each rule passes on an equivalent pair and FAILS,
naming the check, on a deliberately broken one. Real uvicorn, real PostgreSQL, no mocks.

The fixture pairs (tests/fixtures/pairs/) are loaded through PAIRBENCH_PAIRS into a target
server of this module's own; a broken pair is the same pair with one variant's request changed
by the scenario (`[request.variants.<name>]`), so the breakage is visible in the test itself.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from pairbench.harness import catalogue, scenario, verify

LOAD = """
[profiles.quick]
knob_values = {knobs}
users = 1
round_seconds = 1
rounds = 1
"""


def _verify(
    fixture_server: tuple[httpx.Client, catalogue.Catalogue],
    tmp_path: Path,
    body: str,
    knobs: str = "[3]",
) -> verify.Verification:
    client, described = fixture_server
    path = tmp_path / "pair.toml"
    path.write_text(body + LOAD.format(knobs=knobs))
    spec = scenario.load_scenario(path)
    pair = catalogue.resolve(spec, described)
    return verify.verify_pair(client, pair, spec.load("quick").knob_values)


def _failed(outcome: verify.Verification) -> set[str]:
    return {c.name for c in outcome.checks if not c.passed}


JSON_PAIR = """
pair = "fixture_rows"
[request]
path = "/fixture_rows/{variant}"
query = { n = "{knob}" }
"""


def test_json_rule_passes_on_equal_bodies(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outcome = _verify(fixture_server, tmp_path, JSON_PAIR)
    assert outcome.passed, outcome.first_failure
    assert {"status", "equal_body"} <= {c.name for c in outcome.checks}


def test_json_rule_fails_when_a_variant_returns_other_data(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = JSON_PAIR + '[request.variants.join]\nquery = { n = "2" }\n'
    outcome = _verify(fixture_server, tmp_path, broken)
    assert _failed(outcome) == {"equal_body"}
    assert {c.variant for c in outcome.checks if not c.passed} == {"join"}


def test_expected_status_is_checked(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outcome = _verify(fixture_server, tmp_path, JSON_PAIR + "status = 201\n")
    assert "status" in _failed(outcome)
    assert "expected 201" in next(c.detail for c in outcome.checks if not c.passed)


def test_a_status_list_expects_its_first_status_of_a_lone_request(
    fixture_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # [200, 429]: a lone request (not rate limited) must get the 200; load accepts either.
    outcome = _verify(fixture_server, tmp_path, JSON_PAIR + "status = [200, 429]\n")
    assert outcome.passed, outcome.first_failure
    # Listing the 429 first asks verification for a 429, which a lone request does not get.
    outcome = _verify(fixture_server, tmp_path, JSON_PAIR + "status = [429, 200]\n")
    assert "status" in _failed(outcome)
    assert "expected 429" in next(c.detail for c in outcome.checks if not c.passed)


def test_plan_check_reads_the_access_paths(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = JSON_PAIR + '[mechanism.plan]\nper_row = "Index Scan"\n'
    outcome = _verify(fixture_server, tmp_path, good)
    assert outcome.passed, outcome.first_failure
    plans = [c for c in outcome.checks if c.name == "plan"]
    assert {c.variant for c in plans} == {"per_row", "join", "batched"}
    assert all("access paths:" in c.detail for c in plans)
    wrong = JSON_PAIR + '[mechanism.plan]\nper_row = "Seq Scan on no_such_table"\n'
    outcome = _verify(fixture_server, tmp_path, wrong)
    assert _failed(outcome) == {"plan"}


BYTES_PAIR = """
pair = "harness_echo"
[request]
path = "/harness_echo/{variant}"
json = { text = "ab", repeat = "{knob}" }

[mechanism.harness_echo_bodies]
loop = { base = 1 }
join = { base = 1 }
"""


def test_bytes_rule_and_a_posted_json_body(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outcome = _verify(fixture_server, tmp_path, BYTES_PAIR)
    assert outcome.passed, outcome.first_failure
    statuses = [c.detail for c in outcome.checks if c.name == "status"]
    assert statuses and all(d.startswith("POST /harness_echo/") for d in statuses)
    assert any(c.name == "equal_bytes" for c in outcome.checks)


def test_bytes_rule_fails_on_equal_json_in_other_bytes(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = BYTES_PAIR + '[request.variants.join]\nquery = { pretty = "1" }\n'
    outcome = _verify(fixture_server, tmp_path, broken)
    assert _failed(outcome) == {"equal_bytes"}


DECODED_PAIR = """
pair = "harness_gzip"
request = "/harness_gzip/{variant}?n={knob}"
"""


def test_decoded_rule_undoes_gzip(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outcome = _verify(fixture_server, tmp_path, DECODED_PAIR, "[1, 50]")
    assert outcome.passed, outcome.first_failure
    decodes = {c.variant: c.detail for c in outcome.checks if c.name == "decode"}
    assert decodes == {"plain": "Content-Encoding none", "gzipped": "Content-Encoding gzip"}


def test_decoded_rule_fails_on_other_content(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = """
pair = "harness_gzip"
[request]
path = "/harness_gzip/{variant}?n={knob}"
[request.variants.gzipped]
query = { shift = "1" }
"""
    outcome = _verify(fixture_server, tmp_path, broken)
    assert _failed(outcome) == {"equal_decoded"}


LINES_PAIR = """
pair = "harness_lines"
[request]
path = "/harness_lines/{variant}"
query = { n = "{knob}" }
"""


def test_jsonlines_rule_compares_rows_not_bytes(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outcome = _verify(fixture_server, tmp_path, LINES_PAIR, "[1, 200]")
    assert outcome.passed, outcome.first_failure
    assert any(c.name == "equal_rows" for c in outcome.checks)


def test_jsonlines_rule_fails_on_a_missing_row(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = LINES_PAIR + '[request.variants.streamed]\nquery = { n = "{knob}", drop = "1" }\n'
    outcome = _verify(fixture_server, tmp_path, broken)
    assert _failed(outcome) == {"equal_rows"}


ARRAY_PAIR = (
    LINES_PAIR + '[request.variants.streamed]\nquery = { n = "{knob}", framing = "array" }\n'
)


def test_jsonlines_rule_reads_a_json_array_as_the_same_rows(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # JSON lines from one variant, a streamed application/json array from the other.
    outcome = _verify(fixture_server, tmp_path, ARRAY_PAIR, "[1, 200]")
    assert outcome.passed, outcome.first_failure
    assert any(c.name == "equal_rows" for c in outcome.checks)


def test_jsonlines_rule_fails_on_an_array_missing_a_row(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = ARRAY_PAIR.replace('framing = "array"', 'framing = "array", drop = "1"')
    outcome = _verify(fixture_server, tmp_path, broken)
    assert _failed(outcome) == {"equal_rows"}


def test_not_modified_rule_on_both_etag_pairs(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for body in (
        'pair = "harness_etag"\nrequest = "/harness_etag/{variant}?n={knob}"\n',
        'pair = "fixture_etag"\nrequest = "/fixture_etag/{variant}?kb={knob}"\n',
    ):
        outcome = _verify(fixture_server, tmp_path, body)
        assert outcome.passed, outcome.first_failure
        assert {"etag", "not_modified", "equal_body"} <= {c.name for c in outcome.checks}


def test_not_modified_rule_fails_on_a_different_etag(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = """
pair = "harness_etag"
[request]
path = "/harness_etag/{variant}?n={knob}"
[request.variants.versioned]
query = { rotate = "1" }
"""
    outcome = _verify(fixture_server, tmp_path, broken)
    assert _failed(outcome) == {"not_modified"}
    detail = next(c.detail for c in outcome.checks if not c.passed)
    assert "ETag" in detail and "instead of" in detail


WRITES_PAIR = """
pair = "fixture_writes"
[request]
path = "/fixture_writes/{variant}"
query = { n = "{knob}" }
"""


def test_side_effect_rule_compares_state_and_checks_reset(fixture_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outcome = _verify(fixture_server, tmp_path, WRITES_PAIR, "[1, 5]")
    assert outcome.passed, outcome.first_failure
    names = [c.name for c in outcome.checks]
    assert "equal_state" in names and names.count("reset_restores") == 4  # 2 knobs x 2 variants
    statuses = [c.detail for c in outcome.checks if c.name == "status"]
    assert all(d.startswith("POST ") for d in statuses)  # the variants' declared method


def test_side_effect_rule_fails_when_a_variant_writes_twice_as_much(
    fixture_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    broken = WRITES_PAIR + '[request.variants.one_statement]\nquery = { n = "6" }\n'
    outcome = _verify(fixture_server, tmp_path, broken)
    assert _failed(outcome) == {"equal_state"}
