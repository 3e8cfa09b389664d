"""Own-service scenarios: a base URL, variants, knob and labels of the scenario's own, and
verification by status only unless the scenario asks for equal bodies.

Verification runs against a real HTTP server, the session's targets app, treated as a service
that describes nothing: its `/healthz` and `/openapi.json` both answer 200 with different bodies.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pairbench.errors import UsageError
from pairbench.harness import catalogue, external, scenario, server, verify

OWN = """
pair = "my_service"
base_url = "{url}"
{extra}

[variants]
old = "bad"
new = "good"

[labels]
old = "the old endpoint"

[knob]
name = "k"
label = "a query value"

[request.variants.old]
path = "/healthz?k={{knob}}"

[request.variants.new]
path = "{new}"

[profiles.quick]
knob_values = [1]
users = 1
round_seconds = 0.2
rounds = 2
"""


def _scenario(tmp_path: Path, url: str, new: str, extra: str = "") -> scenario.Scenario:
    path = tmp_path / "my_service.toml"
    path.write_text(OWN.format(url=url, new=new, extra=extra))
    return scenario.load_scenario(path)


def _verify(spec: scenario.Scenario) -> verify.Verification:
    pair = catalogue.resolve(spec, catalogue.Catalogue())  # it describes nothing
    assert [v.label for v in pair.variants] == ["the old endpoint", "new"]
    with httpx.Client(base_url=str(spec.base_url), timeout=verify.REQUEST_TIMEOUT_S) as client:
        return verify.verify_pair(client, pair, [1])


def test_status_only_by_default_equal_bodies_when_asked(
    target_server: server.TargetServer, tmp_path: Path
) -> None:
    url = target_server.url
    statuses = _verify(_scenario(tmp_path, url, "/openapi.json?k={knob}"))
    # Statuses only: no body compared (the plan checks are this server's: it offers plans).
    names = {c.name for c in statuses.checks}
    assert statuses.passed and "status" in names and "equal_body" not in names
    bodies = _verify(_scenario(tmp_path, url, "/openapi.json?k={knob}", 'equivalence = "json"'))
    assert not bodies.passed and bodies.first_failure is not None
    assert bodies.first_failure.name == "equal_body"
    # A whole URL as a path: the same service named twice, as two deployments would be.
    whole = _verify(_scenario(tmp_path, url, url + "/healthz?k={knob}", 'equivalence = "json"'))
    assert whole.passed
    missing = _verify(_scenario(tmp_path, url, "/no-such-path?k={knob}"))
    assert not missing.passed and missing.first_failure is not None
    assert "-> 404" in missing.first_failure.detail


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda t: t.replace('[knob]\nname = "k"', '[unused]\nname = "k"'), "unused"),
        (lambda t: t.replace("[labels]\nold", "[labels]\nnewest"), "labels.newest: no such"),
        (lambda t: t.replace('base_url = "http://h:1"', 'base_url = "http://h:1/x"'), "base_url"),
        (lambda t: t.replace('base_url = "http://h:1"', ""), "equivalence is for a service"),
    ],
)
def test_malformed_own_service_scenarios(tmp_path: Path, change: object, error: str) -> None:
    text = OWN.format(url="http://h:1", new="/b?k={knob}", extra='equivalence = "json"')
    path = tmp_path / "bad.toml"
    path.write_text(change(text))  # type: ignore[operator]
    with pytest.raises(UsageError, match=error):
        scenario.load_scenario(path)


def test_own_service_and_builtin_scenarios_run_apart(tmp_path: Path) -> None:
    own = _scenario(tmp_path, "http://h:1", "/b?k={knob}")
    plain = tmp_path / "plain.toml"
    plain.write_text(
        'pair = "p"\nrequest = "/p/{variant}?n={knob}"\n'
        "[profiles.quick]\nknob_values = [1]\nusers = 1\nround_seconds = 0.2\nrounds = 2\n"
    )
    with pytest.raises(UsageError, match="run them apart"):
        external.where(None, [own, scenario.load_scenario(plain)])
    assert external.where(None, [own]) == ("http://h:1", external.OWN_SERVICE)
    assert external.where("http://other:2/", [own]) == ("http://other:2", external.OWN_SERVICE)
