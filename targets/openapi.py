"""What the OpenAPI document says the app returns, beside what FastAPI infers from the handlers.

FastAPI documents a handler's 200 and, when it takes parameters, the 422 of a failed validation.
The rest is declared here once: the body of every error a handler raises (a pair declares its
statuses with `@pair.variant(..., responses=...)`, docs/architecture.md, "The OpenAPI
contract"), the 200 body where it is fixed (`Pair(body=...)`, `@pair.route(..., body=...)`),
and the media types of the responses that are not JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Response
from pydantic import BaseModel, ConfigDict

# The Prometheus text format, version pinned: prometheus_client's CONTENT_TYPE_LATEST changes
# with the installed version (1.0.0 since 0.22), and the document must say what is served.
# generate_latest's default output (legacy names, escaped) is valid 0.0.4 text.
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
OCTET_STREAM = "application/octet-stream"


class Body(BaseModel):
    """A documented JSON body: exactly these keys (the schema says additionalProperties: false).

    For the document only: a pair's handlers build their bodies themselves, and the app never
    validates a response against it, so declaring a body costs a measured request nothing.
    """

    model_config = ConfigDict(extra="forbid")


class ErrorBody(Body):
    """The body of every HTTPException the app raises: FastAPI's `{"detail": "..."}`."""

    detail: str


class PrometheusResponse(Response):
    """/metrics: Prometheus text, with the content type the document declares."""

    media_type = PROMETHEUS_TEXT


class OctetStreamResponse(Response):
    """Raw bytes (application/octet-stream)."""

    media_type = OCTET_STREAM


def media_response(media_type: str | None) -> dict[str, Any]:
    """`add_api_route`'s response class for a 200 that is not JSON: none (FastAPI's default,
    JSON) unless `media_type` is given.

    FastAPI documents a route's 200 with its response class's media type, whatever the
    handler returns; a handler that streams JSON lines declares it here.
    """
    if media_type is None:
        return {}
    return {"response_class": type("MediaResponse", (Response,), {"media_type": media_type})}


def responses(errors: Mapping[int, str], body: Any = None) -> dict[int | str, dict[str, Any]]:
    """FastAPI's `responses=`: the 200's `body` (a model or type), if given, and each other
    status a handler returns ({status: what it means}): an error with the error body, another
    success (a 202) with the 200's body."""
    documented: dict[int | str, dict[str, Any]] = {}
    if body is not None:
        documented[200] = {"description": "Successful Response", "model": body}
    for status, description in sorted(errors.items()):
        if status < 300:  # another success (202 Accepted): the same body as the 200's
            documented[status] = {"description": description}
            if body is not None:
                documented[status]["model"] = body
        else:
            documented[status] = {"description": description, "model": ErrorBody}
    return documented


def exact_bodies(document: dict[str, Any], operations: Iterable[tuple[str, str]]) -> None:
    """Make the 200 schema of each (path, method) exactly its declared body, in place.

    FastAPI merges a declared 200 body into the schema it infers from the handler's return
    annotation (`dict[str, Any]`): `{"$ref": ..., "type": "object", "additionalProperties":
    true}`. Valid in OpenAPI 3.1, but tools that read a `$ref` alone see a looser body than the
    one declared, so the inferred siblings of every `$ref` are dropped.
    """
    for path, method in operations:
        content = document["paths"][path][method]["responses"]["200"]["content"]
        for media in content.values():
            media["schema"] = _refs_only(media["schema"])


def _refs_only(schema: Any) -> Any:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return {"$ref": schema["$ref"]}
        return {key: _refs_only(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_refs_only(value) for value in schema]
    return schema
