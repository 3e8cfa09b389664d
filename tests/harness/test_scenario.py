"""The scenario's request format: the old string form, the table forms, steps, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pairbench.errors import UsageError
from pairbench.harness import request, scenario

LOAD = """
[profiles.quick]
knob_values = [5]
users = 1
round_seconds = 1
rounds = 1
"""


def _load(tmp_path: Path, body: str) -> scenario.Scenario:
    path = tmp_path / "pair.toml"
    path.write_text(body + LOAD)
    return scenario.load_scenario(path)


def test_the_string_form_is_a_get_expecting_200(tmp_path: Path) -> None:
    spec = _load(tmp_path, 'pair = "p"\nrequest = "/p/{variant}?n={knob}"\n')
    (step,) = request.render(spec, "lazy", 5, {})
    assert step["method"] == "GET" and step["path"] == "/p/lazy?n=5" and step["status"] == 200
    assert step["body"] is None and step["headers"] == {}


def test_a_path_per_variant(tmp_path: Path) -> None:
    spec = _load(tmp_path, 'pair = "p"\n[request]\na = "/x?n={knob}"\nb = "/y?n={knob}"\n')
    assert request.render(spec, "b", 5, {})[0]["path"] == "/y?n=5"
    spec.check_variants({"a", "b"})
    with pytest.raises(UsageError, match="no path for variant 'c'"):
        spec.check_variants({"a", "b", "c"})


def test_method_query_headers_body_and_status(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        """
pair = "p"
[keys]
count = 10
exponent = 0.0
[request]
method = "PUT"
path = "/p/{variant}"
query = { n = "{knob}", cursor = "{cursor}" }
headers = { "X-Knob" = "{knob}" }
json = { id = "{key}", n = "{knob}", note = "n is {knob}", cursor = "{cursor}" }
status = 201
[request.variants.good]
method = "PATCH"
""",
    )
    (bad,) = request.render(spec, "bad", 5, {"cursor": "a b"}, "POST")
    assert bad["method"] == "PUT" and bad["status"] == 201
    assert bad["path"] == "/p/bad?n=5&cursor=a%20b"
    assert bad["headers"] == {"X-Knob": "5", "Content-Type": "application/json"}
    (keyed,) = request.with_key([bad], 7)
    assert json.loads(keyed["body"]) == {"id": 7, "n": 5, "note": "n is 5", "cursor": "a b"}
    assert request.render(spec, "good", 5, {"cursor": ""})[0]["method"] == "PATCH"


def test_steps_carry_a_header(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        """
pair = "p"
[[request.steps]]
path = "/p/{variant}?n={knob}"
once = true
measure = false
[[request.steps]]
path = "/p/{variant}?n={knob}"
carry = { "If-None-Match" = "ETag" }
status = 304
""",
    )
    first, second = request.render(spec, "v", 5, {})
    assert first["once"] and not first["measure"]
    assert second["carry"] == {"If-None-Match": "ETag"} and second["status"] == 304


def test_a_step_may_accept_a_list_of_statuses(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        'pair = "p"\n[request]\npath = "/p/{variant}?n={knob}"\nstatus = [200, 429]\n'
        "[request.variants.open]\nstatus = 200\n",
    )
    (limited,) = request.render(spec, "limited", 5, {})
    assert limited["status"] == [200, 429]
    assert request.expected_status(limited) == 200  # what verification wants of a lone request
    assert request.accepted_statuses(limited) == {200, 429}  # what load counts as successes
    (unlimited,) = request.render(spec, "open", 5, {})
    assert request.expected_status(unlimited) == 200
    assert request.accepted_statuses(unlimited) == {200}
    assert spec.request.step_for("limited", 0).expected_status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('[request]\nmethod = "FETCH"\npath = "/p/{variant}?n={knob}"\n', "method"),
        ('[request]\npath = "/p/{variant}?n={knob}"\nstatus = []\n', "status"),
        ('[request]\npath = "/p/{variant}?n={knob}"\nstatus = [200, 99]\n', "status"),
        ('[request]\npath = "/p/{variant}?n={knob}"\nstatus = [200, "429"]\n', "status"),
        ('[request]\npath = "/p/{variant}?n={knob}"\nstatus = [429, 429]\n', "repeated status"),
        (
            '[request]\npath = "/p/{variant}?n={knob}"\n[request.variants.v]\nstatus = [200, 200]\n',
            "repeated status",
        ),
        ('[request]\npath = "p/{variant}?n={knob}"\n', "path must start with /"),
        ('[request]\npath = "/p/{variant}?n={knob}"\nstatus = 99\n', "status"),
        ('[request]\npath = "/p/{variant}"\n', "{knob} appears in no request"),
        ('[request]\npath = "/p/{variant}?n={knob}"\ncolour = "red"\n', "colour"),
        ('[[request.steps]]\npath = "/p/{variant}?n={knob}"\ncarry = { A = "B" }\n', "carry"),
    ],
)
def test_validation_errors_are_one_line_naming_file_and_field(
    tmp_path: Path, body: str, field: str
) -> None:
    with pytest.raises(UsageError) as caught:
        _load(tmp_path, 'pair = "p"\n' + body)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "pair.toml"))
    assert field in message


def test_plan_expectations_live_under_mechanism(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        'pair = "p"\nrequest = "/p/{variant}?n={knob}"\n[mechanism.plan]\ngood = "Index Scan"\n',
    )
    assert spec.plan == {"good": "Index Scan"} and spec.mechanism == {}
    with pytest.raises(UsageError, match=r"plan\.good: no such variant"):
        spec.check_variants({"bad", "best"})


OPEN = """
[profiles.quick]
model = "open"
knob_values = [10, 20]
users = 4
round_seconds = 1
rounds = 1
"""


def test_the_open_model_takes_its_rate_from_the_profile_or_the_knob(tmp_path: Path) -> None:
    path = tmp_path / "pair.toml"
    path.write_text('pair = "p"\nrequest = "/p/{variant}?n={knob}"\n' + OPEN)
    with pytest.raises(UsageError, match=r"profiles\.quick: the open model needs rate"):
        scenario.load_scenario(path)
    path.write_text('pair = "p"\nknob_sets = "rate"\nrequest = "/p/{variant}"\n' + OPEN)
    spec = scenario.load_scenario(path)
    assert spec.rate_at(spec.load("quick"), 20) == 20


def test_the_key_count_can_be_the_knob(tmp_path: Path) -> None:
    keyed = '[keys]\ncount = "knob"\nexponent = 0.0\n'
    spec = _load(tmp_path, f'pair = "p"\nrequest = "/p/{{variant}}?id={{key}}"\n{keyed}')
    assert spec.keys is not None
    assert (spec.keys.count_at(5), spec.keys.count_at(250)) == (5, 250)
    fixed = _load(tmp_path, 'pair = "p"\nrequest = "/p/{variant}?n={knob}"\n[keys]\ncount = 9\n')
    assert fixed.keys is not None and fixed.keys.count_at(5) == 9
    fractional = LOAD.replace("[5]", "[2.5]")
    path = tmp_path / "pair.toml"
    path.write_text(f'pair = "p"\nrequest = "/p/{{variant}}?id={{key}}"\n{keyed}{fractional}')
    with pytest.raises(UsageError, match=r"2\.5: with keys\.count"):
        scenario.load_scenario(path)


def test_a_downstream_table_sets_the_service_for_the_pair(tmp_path: Path) -> None:
    """docs/architecture.md, "The downstream service": concurrency and over_limit per scenario."""
    plain = _load(tmp_path, 'pair = "p"\nrequest = "/p/{variant}?n={knob}"\n')
    assert plain.downstream is None
    spec = _load(
        tmp_path,
        'pair = "p"\nrequest = "/p/{variant}?n={knob}"\n'
        '[downstream]\nconcurrency = 3\nover_limit = "reject"\n',
    )
    assert spec.downstream == scenario.DownstreamTable(concurrency=3, over_limit="reject")
    defaults = _load(tmp_path, 'pair = "p"\nrequest = "/p/{variant}?n={knob}"\n[downstream]\n')
    assert defaults.downstream == scenario.DownstreamTable(concurrency=8, over_limit="queue")


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ("concurrency = 0", "downstream.concurrency"),
        ("concurrency = 100000", "downstream.concurrency"),
        ('over_limit = "drop"', "downstream.over_limit"),
        ("hang = 1", "downstream.hang"),
    ],
)
def test_a_bad_downstream_table_is_one_line(tmp_path: Path, table: str, field: str) -> None:
    with pytest.raises(UsageError) as caught:
        _load(
            tmp_path, f'pair = "p"\nrequest = "/p/{{variant}}?n={{knob}}"\n[downstream]\n{table}\n'
        )
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "pair.toml"))
    assert field in message
