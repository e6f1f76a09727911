"""JSON responses serialised by orjson, numpy arrays included, with no validation pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi.responses import Response

__all__ = ["dumps", "json_response"]

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=_OPTIONS)


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        dumps(content), status_code=status, headers=headers, media_type="application/json"
    )
