"""What the OpenAPI document says the app returns, beside what FastAPI infers from the handlers.

FastAPI documents a handler's 200 and, when it takes parameters, the 422 of a failed validation.
The rest is declared here once: the body of every error a handler raises (a pair declares its
statuses with `@pair.variant(..., responses=...)`, docs/architecture.md, "The OpenAPI
contract"), and the media types of the responses that are not JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Response
from pydantic import BaseModel

# The Prometheus text format, version pinned: prometheus_client's CONTENT_TYPE_LATEST changes
# with the installed version (1.0.0 since 0.22), and the document must say what is served.
# generate_latest's default output (legacy names, escaped) is valid 0.0.4 text.
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
OCTET_STREAM = "application/octet-stream"


class ErrorBody(BaseModel):
    """The body of every HTTPException the app raises: FastAPI's `{"detail": "..."}`."""

    detail: str


class PrometheusResponse(Response):
    """/metrics: Prometheus text, with the content type the document declares."""

    media_type = PROMETHEUS_TEXT


class OctetStreamResponse(Response):
    """Raw bytes (application/octet-stream)."""

    media_type = OCTET_STREAM


def error_responses(declared: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """FastAPI's `responses=` for the errors a handler raises: {status: what it means}."""
    return {
        status: {"description": description, "model": ErrorBody}
        for status, description in sorted(declared.items())
    }
