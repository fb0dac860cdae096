"""JSON responses serialised with orjson (fast; also what the cache stores)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, bytes):  # already serialised, e.g. a cache hit
            return content
        return orjson.dumps(content)
