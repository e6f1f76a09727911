"""OpenAPI documentation for endpoints that read their body by hand (no pydantic request model)."""

from __future__ import annotations

from typing import Any

__all__ = ["json_body"]


def json_body(schema: dict[str, Any], example: Any) -> dict[str, Any]:
    """`openapi_extra` describing a required JSON request body."""
    content = {"application/json": {"schema": schema, "example": example}}
    return {"requestBody": {"required": True, "content": content}}
