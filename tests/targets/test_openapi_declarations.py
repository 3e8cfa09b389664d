"""What a pair may declare for the OpenAPI document: checked at load time, naming the pair."""

from __future__ import annotations

import pytest

from pairbench.targets.openapi import Body, ErrorBody, exact_bodies, media_response, responses
from pairbench.targets.registry import Knob, Pair, PairError, Responses, catalogue


def _pair(bad: Responses | None = None, route: Responses | None = None) -> Pair:
    pair = Pair(name="demo", title="t", summary="s", knob=Knob("n", "n", "n"))

    @pair.variant("bad", responses=bad)
    async def slow() -> None:
        """Slow."""

    @pair.variant("good")
    async def fast() -> None:
        """Fast."""

    @pair.route("helper", responses=route)
    async def helper() -> None:
        """A helper."""

    return pair


def test_declared_client_errors_pass() -> None:
    _pair(bad={404: "no such row"}, route={400: "bad token", 409: "taken"}).check(catalogue({}))


@pytest.mark.parametrize("status", [422, 500, 503, 200, 302])
def test_a_variant_may_not_declare_anything_but_its_own_4xx(status: int) -> None:
    with pytest.raises(PairError, match=rf"pair 'demo', 'slow': .* not {status}"):
        _pair(bad={status: "?"}).check(catalogue({}))


def test_a_route_is_checked_as_a_variant_is() -> None:
    with pytest.raises(PairError, match=r"pair 'demo', 'helper': .* not 500"):
        _pair(route={500: "?"}).check(catalogue({}))


class Row(Body):
    id: int


def test_a_variant_that_is_not_json_declares_its_media_type() -> None:
    pair = Pair(name="demo", title="t", summary="s", knob=Knob("n", "n", "n"), body=list[Row])

    @pair.variant("bad")
    async def listed() -> None:
        """A JSON array."""

    @pair.variant("good", media_type="application/x-ndjson")
    async def lines() -> None:
        """JSON lines."""

    assert pair.variants["listed"].media_type is None
    assert pair.variants["lines"].media_type == "application/x-ndjson"
    # JSON keeps FastAPI's default response class (no argument); another media type gets a
    # response class that declares it, which is what FastAPI documents the 200 with.
    assert media_response(None) == {}
    declared = media_response("application/x-ndjson")["response_class"]
    assert declared.media_type == "application/x-ndjson"


def test_responses_document_the_body_and_each_error_with_the_error_body() -> None:
    documented = responses({404: "no such row", 400: "bad token"}, Row)
    assert list(documented) == [200, 400, 404]
    assert documented[200]["model"] is Row
    assert documented[404] == {"description": "no such row", "model": ErrorBody}
    assert responses({}) == {}


def test_exact_bodies_drops_what_fastapi_infers_beside_a_reference() -> None:
    merged = {"$ref": "#/components/schemas/Row", "type": "object", "additionalProperties": True}
    listed = {"type": "array", "items": dict(merged)}
    document = {
        "paths": {
            "/one": {
                "get": {"responses": {"200": {"content": {"application/json": {"schema": merged}}}}}
            },
            "/many": {
                "get": {"responses": {"200": {"content": {"application/json": {"schema": listed}}}}}
            },
        }
    }
    exact_bodies(document, [("/one", "get"), ("/many", "get")])
    one = document["paths"]["/one"]["get"]["responses"]["200"]["content"]["application/json"]
    many = document["paths"]["/many"]["get"]["responses"]["200"]["content"]["application/json"]
    assert one["schema"] == {"$ref": "#/components/schemas/Row"}
    assert many["schema"] == {"type": "array", "items": {"$ref": "#/components/schemas/Row"}}


def test_another_success_is_documented_with_the_200s_body() -> None:
    documented = responses({202: "accepted", 404: "no such row"}, Row)
    assert documented[202] == {"description": "accepted", "model": Row}
    assert documented[404]["model"] is ErrorBody
    assert responses({202: "accepted"}) == {202: {"description": "accepted"}}
